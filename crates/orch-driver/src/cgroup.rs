//! Per-task cgroups for the process driver: memory and cpu limits, OOM detection.
//!
//! cgroup v2 (`/sys/fs/cgroup/cgroup.controllers` lists `memory`) puts a task in
//! `/sys/fs/cgroup/orch/<task>` with `memory.max` and `cpu.max`. cgroup v1 (a writable
//! `/sys/fs/cgroup/memory`) uses `memory/orch/<task>` with `memory.limit_in_bytes` and, if the
//! cpu hierarchy is writable too, `cpu/orch/<task>` with `cpu.shares` and a CFS quota. The
//! driver probes once ([`Cgroups::detect`]); the executor creates the group and the task
//! joins it before it execs.
//!
//! May depend on: nothing internal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const CFS_PERIOD_US: u64 = 100_000;

/// Which cgroup interface the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupVersion {
    /// Separate hierarchies per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// Where orch keeps its task cgroups on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    version: CgroupVersion,
    /// v2: the parent of all task groups; v1: the parent in the memory hierarchy.
    memory_parent: PathBuf,
    /// v1 only: the parent in the cpu hierarchy, if writable.
    cpu_parent: Option<PathBuf>,
}

/// The cgroup of one task, as written into its launch file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgroupPlan {
    /// Interface version.
    pub version: CgroupVersion,
    /// The group holding the memory controller (v2: the only group).
    pub memory_dir: PathBuf,
    /// v1: the group in the cpu hierarchy, if any.
    pub cpu_dir: Option<PathBuf>,
    /// Memory limit in bytes (0 = none).
    pub memory_bytes: u64,
    /// Cpu share (0 = none).
    pub cpus: f64,
}

impl Cgroups {
    /// Finds a writable cgroup hierarchy with a memory controller, creating orch's parent
    /// groups. The error says why limits cannot be enforced.
    pub fn detect() -> Result<Self, String> {
        Self::detect_at(Path::new(ROOT))
    }

    fn detect_at(root: &Path) -> Result<Self, String> {
        let controllers = fs::read_to_string(root.join("cgroup.controllers")).ok();
        if let Some(controllers) = controllers {
            if !controllers.split_whitespace().any(|c| c == "memory") {
                return Err(format!(
                    "cgroup v2 at {} has no memory controller",
                    root.display()
                ));
            }
            let parent = root.join("orch");
            create_dir(&parent)?;
            // Delegate memory and cpu to the task groups (the root may refuse cpu).
            for controller in ["+memory", "+cpu"] {
                let _ = fs::write(root.join("cgroup.subtree_control"), controller);
                let _ = fs::write(parent.join("cgroup.subtree_control"), controller);
            }
            let enabled = fs::read_to_string(parent.join("cgroup.subtree_control"))
                .map_err(|e| format!("cannot read {}: {e}", parent.display()))?;
            if !enabled.split_whitespace().any(|c| c == "memory") {
                return Err(format!(
                    "cannot enable the memory controller below {}",
                    parent.display()
                ));
            }
            return Ok(Self {
                version: CgroupVersion::V2,
                memory_parent: parent,
                cpu_parent: None,
            });
        }
        let memory = root.join("memory");
        if !memory.join("memory.limit_in_bytes").exists() {
            return Err(format!(
                "no cgroup v2 at {root} and no cgroup v1 memory hierarchy at {memory}",
                root = root.display(),
                memory = memory.display()
            ));
        }
        let memory_parent = memory.join("orch");
        create_dir(&memory_parent)?;
        let cpu_parent = ["cpu", "cpu,cpuacct"]
            .iter()
            .map(|name| root.join(name))
            .find(|dir| dir.join("cpu.shares").exists())
            .map(|dir| dir.join("orch"))
            .filter(|parent| create_dir(parent).is_ok());
        Ok(Self {
            version: CgroupVersion::V1,
            memory_parent,
            cpu_parent,
        })
    }

    /// The interface in use.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The group a task with these resources gets (nothing is created yet).
    pub fn plan(&self, name: &str, mem_mib: f64, cpus: f64) -> CgroupPlan {
        let memory_bytes = if mem_mib > 0.0 {
            // Float-to-int `as` saturates: an absurd size becomes u64::MAX, never wraps.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bytes = (mem_mib * 1024.0 * 1024.0) as u64;
            bytes
        } else {
            0
        };
        CgroupPlan {
            version: self.version,
            memory_dir: self.memory_parent.join(name),
            cpu_dir: self.cpu_parent.as_ref().map(|p| p.join(name)),
            memory_bytes,
            cpus: cpus.max(0.0),
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", dir.display())),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value} to {}: {e}", dir.join(file).display()),
        )
    })
}

impl CgroupPlan {
    /// Creates the groups and sets the limits (idempotent).
    pub fn create(&self) -> io::Result<()> {
        // Float-to-int `as` saturates (and is at least 1000 here): nothing wraps.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let quota = (self.cpus * CFS_PERIOD_US as f64).round().max(1000.0) as u64;
        match self.version {
            CgroupVersion::V2 => {
                create(&self.memory_dir)?;
                if self.memory_bytes > 0 {
                    write(
                        &self.memory_dir,
                        "memory.max",
                        &self.memory_bytes.to_string(),
                    )?;
                    // No swap, so the limit is the limit.
                    let _ = fs::write(self.memory_dir.join("memory.swap.max"), "0");
                }
                if self.cpus > 0.0 && self.memory_dir.join("cpu.max").exists() {
                    write(
                        &self.memory_dir,
                        "cpu.max",
                        &format!("{quota} {CFS_PERIOD_US}"),
                    )?;
                }
            }
            CgroupVersion::V1 => {
                create(&self.memory_dir)?;
                if self.memory_bytes > 0 {
                    let limit = self.memory_bytes.to_string();
                    write(&self.memory_dir, "memory.limit_in_bytes", &limit)?;
                    // memsw must be >= the memory limit, so it is set after it.
                    let _ = fs::write(self.memory_dir.join("memory.memsw.limit_in_bytes"), &limit);
                }
                if let Some(cpu) = &self.cpu_dir {
                    create(cpu)?;
                    if self.cpus > 0.0 {
                        // Float-to-int `as` saturates: nothing wraps.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let shares = ((self.cpus * 1024.0) as u64).max(2);
                        write(cpu, "cpu.shares", &shares.to_string())?;
                        write(cpu, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                        write(cpu, "cpu.cfs_quota_us", &quota.to_string())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` (0 = the caller) into the groups.
    pub fn join(&self, pid: u32) -> io::Result<()> {
        let pid = if pid == 0 { std::process::id() } else { pid };
        write(&self.memory_dir, "cgroup.procs", &pid.to_string())?;
        if let Some(cpu) = &self.cpu_dir {
            write(cpu, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// How many processes the OOM killer killed in the group.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V2 => "memory.events",
            CgroupVersion::V1 => "memory.oom_control",
        };
        fs::read_to_string(self.memory_dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let (key, value) = line.split_once(' ')?;
                    (key == "oom_kill").then(|| value.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }

    /// The most memory the group used, in bytes, if the kernel reports it.
    pub fn max_used(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V2 => "memory.peak",
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
        };
        fs::read_to_string(self.memory_dir.join(file))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    /// The processes still in the group.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.memory_dir.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes the groups; the caller kills their processes first. Missing groups are fine.
    pub fn remove(&self) -> io::Result<()> {
        for dir in std::iter::once(&self.memory_dir).chain(self.cpu_dir.as_ref()) {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("removing {}: {e}", dir.display()),
                    ))
                }
            }
        }
        Ok(())
    }
}

fn create(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io::Error::new(
            e.kind(),
            format!("creating {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_plan_sets_limits_and_reads_oom_kills() {
        let root = tempfile::tempdir().expect("temp dir");
        let cgroups = Cgroups {
            version: CgroupVersion::V2,
            memory_parent: root.path().join("orch"),
            cpu_parent: None,
        };
        fs::create_dir(root.path().join("orch")).expect("cgroup files in a temp dir");
        let plan = cgroups.plan("t1", 64.0, 0.5);
        assert_eq!(plan.memory_dir, root.path().join("orch/t1"));
        assert_eq!(plan.memory_bytes, 64 * 1024 * 1024);
        plan.create().expect("cgroup files in a temp dir");
        assert_eq!(
            fs::read_to_string(plan.memory_dir.join("memory.max"))
                .expect("cgroup files in a temp dir"),
            "67108864"
        );
        fs::write(plan.memory_dir.join("memory.events"), "oom 1\noom_kill 2\n")
            .expect("cgroup files in a temp dir");
        assert_eq!(plan.oom_kills(), 2);
    }

    #[test]
    fn v2_without_memory_is_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::write(root.path().join("cgroup.controllers"), "cpu pids\n")
            .expect("cgroup files in a temp dir");
        let error = Cgroups::detect_at(root.path()).unwrap_err();
        assert!(error.contains("no memory controller"), "{error}");
    }

    #[test]
    fn detects_v1_from_a_fake_tree() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(root.path().join("memory")).expect("cgroup files in a temp dir");
        fs::write(root.path().join("memory/memory.limit_in_bytes"), "max")
            .expect("cgroup files in a temp dir");
        fs::create_dir_all(root.path().join("cpu")).expect("cgroup files in a temp dir");
        fs::write(root.path().join("cpu/cpu.shares"), "1024").expect("cgroup files in a temp dir");
        let cgroups = Cgroups::detect_at(root.path()).expect("a v1 hierarchy is detected");
        assert_eq!(cgroups.version(), CgroupVersion::V1);
        let plan = cgroups.plan("t1", 32.0, 0.25);
        assert_eq!(plan.cpu_dir, Some(root.path().join("cpu/orch/t1")));
        plan.create().expect("cgroup files in a temp dir");
        let cpu = plan.cpu_dir.clone().expect("cgroup files in a temp dir");
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.shares")).expect("cgroup files in a temp dir"),
            "256"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_quota_us")).expect("cgroup files in a temp dir"),
            "25000"
        );
        fs::write(
            plan.memory_dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .expect("cgroup files in a temp dir");
        assert_eq!(plan.oom_kills(), 1);
    }

    #[test]
    fn nothing_usable_is_an_error() {
        let root = tempfile::tempdir().expect("temp dir");
        assert!(Cgroups::detect_at(root.path()).is_err());
    }
}
