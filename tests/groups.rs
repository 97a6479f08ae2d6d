//! `/v2/groups` against a real master (no agents, so deployments stay running and hold
//! their apps): nested create, the tree and a subgroup, a dependency-ordered plan in
//! `/v2/deployments`, 409 for existing groups and locked apps, `force`, `scaleBy`, 422 for
//! cycles and invalid nested apps, delete, and 404s.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::Cluster;

const FORM: Duration = Duration::from_secs(20);
const WHOLE_TEST: Duration = Duration::from_secs(120);

fn app(id: &str, instances: u32) -> Value {
    json!({"id": id, "cmd": "sleep 3600", "cpus": 0.1, "mem": 16, "instances": instances,
           "portDefinitions": []})
}

fn product() -> Value {
    json!({
        "id": "/product",
        "groups": [
            {"id": "service", "dependencies": ["/product/database"],
             "apps": [app("web", 1), app("/product/service/api", 3)]},
            {"id": "database", "apps": [app("pg", 1)]},
            {"id": "empty"},
        ],
    })
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| item["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn groups_over_http() {
    tokio::time::timeout(WHOLE_TEST, scenario())
        .await
        .expect("the scenario finished in time");
}

async fn scenario() {
    let mut c = Cluster::start(1, &[]);
    c.wait_for_leader_among(&[0], Some(1), FORM).await;
    let base = c.url(0);
    let http = c.http.clone();

    // An empty root.
    let r = http.get(&format!("{base}/v2/groups")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let root = r.json();
    assert_eq!(
        (root["id"].clone(), root["apps"].clone()),
        (json!("/"), json!([]))
    );

    // Create nested groups: 201, Location, deployment id in header and body.
    let r = http.post(&format!("{base}/v2/groups"), &product()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("location").as_deref(), Some("/v2/groups/product"));
    let deployment = r.json()["deploymentId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!deployment.is_empty(), "{}", r.body);
    assert_eq!(r.header("marathon-deployment-id"), Some(deployment.clone()));
    assert!(r.json()["version"].is_string(), "{}", r.body);

    // The plan: the database first, then the service that depends on it.
    let r = http.get(&format!("{base}/v2/deployments")).await;
    let deployments = r.json();
    assert_eq!(ids(&deployments), vec![deployment.clone()], "{deployments}");
    let steps: Vec<Vec<String>> = deployments[0]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            step["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    format!(
                        "{} {}",
                        a["action"].as_str().unwrap_or(""),
                        a["app"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            vec!["StartApplication /product/database/pg".to_owned()],
            vec![
                "StartApplication /product/service/api".to_owned(),
                "StartApplication /product/service/web".to_owned()
            ],
        ]
    );

    // The tree and one subgroup.
    let root = http.get(&format!("{base}/v2/groups")).await.json();
    assert_eq!(ids(&root["groups"]), vec!["/product"], "{root}");
    let tree = &root["groups"][0];
    assert_eq!(
        ids(&tree["groups"]),
        vec!["/product/database", "/product/empty", "/product/service"],
        "{root}"
    );
    assert_eq!(
        ids(&tree["groups"][0]["apps"]),
        vec!["/product/database/pg"]
    );
    let r = http.get(&format!("{base}/v2/groups/product/service")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let service = r.json();
    assert_eq!(
        ids(&service["apps"]),
        vec!["/product/service/api", "/product/service/web"]
    );
    assert_eq!(service["dependencies"], json!(["/product/database"]));
    assert_eq!(service["pods"], json!([]));
    assert!(
        service["apps"][0].get("tasksRunning").is_none(),
        "{service}"
    );
    let r = http
        .get(&format!("{base}/v2/groups/product?embed=group.apps.counts"))
        .await;
    let counted = &r.json()["groups"][2]["apps"][0];
    assert_eq!(counted["tasksRunning"], json!(0), "{}", r.body);
    let versions = http
        .get(&format!("{base}/v2/groups/product/versions"))
        .await
        .json();
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");

    // 404s and 409 for a second create.
    let r = http.get(&format!("{base}/v2/groups/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "Group '/nope' does not exist");
    let r = http.post(&format!("{base}/v2/groups"), &product()).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "Group /product is already created. Use PUT to change this group."
    );
    let r = http
        .post(
            &format!("{base}/v2/groups"),
            &json!({"id": "/product/service/web"}),
        )
        .await;
    assert_eq!(r.status, 409, "an app holds that id: {}", r.body);

    // scaleBy: locked by the running deployment, then forced.
    let scale = json!({"scaleBy": 2});
    let r = http
        .put(&format!("{base}/v2/groups/product/service"), &scale)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["deployments"], json!([{"id": deployment}]));
    let r = http
        .put(
            &format!("{base}/v2/groups/product/service?force=true"),
            &scale,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let scaled = r.header("marathon-deployment-id").unwrap_or_default();
    assert_eq!(json!(scaled), r.json()["deploymentId"]);
    let instances = |app: &Value| app["app"]["instances"].clone();
    let web = http
        .get(&format!("{base}/v2/apps/product/service/web"))
        .await
        .json();
    let api = http
        .get(&format!("{base}/v2/apps/product/service/api"))
        .await
        .json();
    assert_eq!((instances(&web), instances(&api)), (json!(2), json!(6)));
    let listed = ids(&http.get(&format!("{base}/v2/deployments")).await.json());
    assert!(
        listed.contains(&scaled) && !listed.contains(&deployment),
        "{listed:?}"
    );

    // 422: a cycle, an invalid nested app, a nested app outside its group.
    let cycle = json!({"dependencies": ["/product/service"]});
    let r = http
        .put(
            &format!("{base}/v2/groups/product/database?force=true"),
            &cycle,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["details"][0]["errors"][0],
        "Dependency graph has cyclic dependencies."
    );
    let bad = json!({"id": "/bad", "groups": [{"id": "x", "apps": [
        {"id": "a", "cmd": "sleep 1"}, {"id": "b", "cmd": "sleep 1", "cpus": "many"}]}]});
    let r = http.post(&format!("{base}/v2/groups"), &bad).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["details"][0]["path"], "/groups(0)/apps(1)/cpus");
    let outside = json!({"id": "/bad", "apps": [{"id": "/elsewhere/a", "cmd": "sleep 1"}]});
    let r = http.post(&format!("{base}/v2/groups"), &outside).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["details"][0]["path"], "/apps(0)/id");
    assert_eq!(http.get(&format!("{base}/v2/groups/bad")).await.status, 404);

    // PUT creates a missing group; an explicit empty group shows in the tree.
    let r = http
        .put(&format!("{base}/v2/groups/other"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        http.get(&format!("{base}/v2/groups/other")).await.status,
        200
    );

    // Delete: locked, then forced; everything below is gone.
    let r = http.delete(&format!("{base}/v2/groups/product")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = http
        .delete(&format!("{base}/v2/groups/product?force=true"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("marathon-deployment-id").is_some());
    assert_eq!(
        http.get(&format!("{base}/v2/groups/product")).await.status,
        404
    );
    let apps = http.get(&format!("{base}/v2/apps")).await.json();
    assert_eq!(apps["apps"], json!([]), "{apps}");
    let r = http.delete(&format!("{base}/v2/groups/nope")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["message"], "Group '/nope' does not exist");
    let root = http.get(&format!("{base}/v2/groups")).await.json();
    assert_eq!(ids(&root["groups"]), vec!["/other"], "{root}");
}
