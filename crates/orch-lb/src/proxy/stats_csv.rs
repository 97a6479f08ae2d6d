//! HAProxy's CSV stats (`/haproxy?stats;csv`) of a [`Report`]: its first 49 columns in
//! HAProxy's order, with the ones zdd and marathon-lb-autoscale read (`pxname`, `svname`,
//! `qcur`, `scur`, `stot`, `bin`, `bout`, `status`, `hrsp_*`, `req_rate`, `req_tot`) filled.
//!
//! Rows: per frontend a `FRONTEND` row (status `OPEN`); per backend one row per server
//! (status `UP` or `DOWN`) then a `BACKEND` row (`UP` while any server is up).
//!
//! May depend on: std, [`super::stats`], [`super::stats_report`].

use super::stats::CounterSnapshot;
use super::stats_report::Report;
use std::fmt::Write as _;

/// HAProxy's CSV header (its first 49 columns).
const CSV_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,";

/// One CSV row.
struct Row<'a> {
    pxname: &'a str,
    svname: &'a str,
    queue: &'a str,
    status: &'a str,
    weight: String,
    iid: usize,
    sid: usize,
    kind: u8,
    counters: &'a CounterSnapshot,
}

impl Row<'_> {
    fn write(&self, out: &mut String) {
        let c = self.counters;
        let (weight, act, bck, lbtot) = if self.kind == 0 {
            (String::new(), String::new(), String::new(), String::new())
        } else {
            (
                self.weight.clone(),
                self.weight.clone(),
                "0".to_owned(),
                c.total.to_string(),
            )
        };
        let _ = writeln!(
            out,
            "{},{},{q},{q},{},,{},{},{},{},,,,{},,{},,{},{},{},{},,,,,,1,{},{},,{},,{},{:.0},,,,,,{},{},{},{},{},{},,{:.0},,{},",
            self.pxname,
            self.svname,
            c.current,
            c.current,
            c.total,
            c.bytes_in,
            c.bytes_out,
            c.connect_errors,
            c.retries,
            self.status,
            weight,
            act,
            bck,
            self.iid,
            self.sid,
            lbtot,
            self.kind,
            c.rate,
            c.hrsp_1xx,
            c.hrsp_2xx,
            c.hrsp_3xx,
            c.hrsp_4xx,
            c.hrsp_5xx,
            c.hrsp_other,
            c.request_rate,
            c.requests,
            q = self.queue,
        );
    }
}

/// The report as HAProxy's CSV (see the module docs).
pub(crate) fn csv(report: &Report) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str(CSV_HEADER);
    out.push('\n');
    let mut iid = 0;
    for frontend in &report.frontends {
        iid += 1;
        Row {
            pxname: &frontend.name,
            svname: "FRONTEND",
            queue: "",
            status: frontend.status,
            weight: String::new(),
            iid,
            sid: 0,
            kind: 0,
            counters: &frontend.counters,
        }
        .write(&mut out);
    }
    for backend in &report.backends {
        iid += 1;
        for (i, server) in backend.servers.iter().enumerate() {
            Row {
                pxname: &backend.name,
                svname: &server.name,
                queue: "0",
                status: server.status,
                weight: "1".to_owned(),
                iid,
                sid: i + 1,
                kind: 2,
                counters: &server.counters,
            }
            .write(&mut out);
        }
        Row {
            pxname: &backend.name,
            svname: "BACKEND",
            queue: "0",
            status: backend.status,
            weight: backend.servers_up.to_string(),
            iid,
            sid: 0,
            kind: 1,
            counters: &backend.counters,
        }
        .write(&mut out);
    }
    out
}
