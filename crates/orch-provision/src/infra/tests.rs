//! Tests of the infra file: defaults, rules, error texts, repo configs.

use super::*;

fn error_text(result: Result<Infra, InfraError>) -> String {
    orch_core::errors::chain(&result.expect_err("the file is invalid"))
}

#[test]
fn an_empty_file_means_every_default() {
    for text in ["", "# only a comment\n", "{}"] {
        let infra = Infra::from_yaml(text, "x.yaml").expect("defaults");
        assert_eq!(infra, Infra::default());
    }
    let infra = Infra::default();
    assert_eq!(infra.cluster, "local");
    assert_eq!((infra.masters, infra.agents), (1, 1));
    assert_eq!(infra.api.to_string(), "127.0.0.1:8080");
    assert_eq!(infra.provider, ProviderKind::Local);
}

#[test]
fn a_full_file_parses() {
    let text = r#"
cluster: dev
provider: local
masters: 3
agents: 2
api: 127.0.0.1:9000
agent_resources: "cpus:2;mem:2048"
containerizers: mesos
vars: {DOMAIN: example.com, REPLICAS: 3, DEBUG: true}
gitops:
  - repo: ..
    name: apps
    branch: main
    path: apps
    exclude: [nginx.json]
    group: /shop
    interval: 1m
    prune: true
    self_heal: true
    auto_rollback: true
    rollback_deadline: 5m
    webhook_secret_env: HOOK
    token_env: TOKEN
    token_secret_env: ACL
    ssh_key: keys/id
"#;
    let infra = Infra::from_yaml(text, "infra/dev.yaml").expect("valid");
    assert_eq!(infra.cluster, "dev");
    assert_eq!((infra.masters, infra.agents), (3, 2));
    assert_eq!(infra.api.port(), 9000);
    assert_eq!(infra.containerizer_names(), Some(vec!["mesos".to_owned()]));
    assert_eq!(infra.vars["REPLICAS"], VarValue("3".into()));
    assert_eq!(infra.vars["DEBUG"], VarValue("true".into()));
    let env = |name: &str| match name {
        "HOOK" => Some("hook-secret".to_owned()),
        "TOKEN" => Some("tok".to_owned()),
        "ACL" => Some("acl-secret".to_owned()),
        _ => None,
    };
    let configs = infra
        .repo_configs(Path::new("/src/project/infra"), env)
        .expect("configs");
    assert_eq!(configs.len(), 1);
    let config = &configs[0];
    assert_eq!(config.repo, "/src/project");
    assert_eq!(config.name, "apps");
    assert_eq!(config.branch.as_deref(), Some("main"));
    assert_eq!(config.exclude, vec!["nginx.json".to_owned()]);
    assert_eq!(config.group, "/shop");
    assert_eq!(config.interval, "1m");
    assert!(config.prune && config.self_heal && config.auto_rollback);
    assert_eq!(config.rollback_deadline, "5m");
    assert_eq!(config.vars["DOMAIN"], "example.com");
    assert_eq!(config.webhook_secret.as_deref(), Some("hook-secret"));
    assert_eq!(config.token.as_deref(), Some("tok"));
    assert_eq!(config.token_secret.as_deref(), Some("acl-secret"));
    assert_eq!(
        config.ssh_key.as_deref(),
        Some("/src/project/infra/keys/id")
    );
    // camelCase JSON, as POST /v1/gitops takes it.
    let json = serde_json::to_value(config).expect("json");
    assert_eq!(json["selfHeal"], true);
    assert_eq!(json["rollbackDeadline"], "5m");
    assert_eq!(json["tokenSecret"], "acl-secret");
}

#[test]
fn repo_urls_are_kept_and_defaults_come_from_the_repo_config() {
    let text = "gitops:\n  - repo: https://example.com/acme/site.git\n  - repo: git@host:x/y\n  - repo: ./here\n";
    let infra = Infra::from_yaml(text, "f").expect("valid");
    let configs = infra
        .repo_configs(Path::new("/base"), |_| None)
        .expect("configs");
    assert_eq!(configs[0].repo, "https://example.com/acme/site.git");
    assert_eq!(configs[1].repo, "git@host:x/y");
    assert_eq!(configs[2].repo, "/base/here");
    assert_eq!(configs[0].path, "apps");
    assert_eq!(configs[0].group, "/");
    assert_eq!(configs[0].interval, "30s");
    assert_eq!(configs[0].rollback_deadline, "10m");
    assert_eq!(configs[0].webhook_secret, None);
    assert!(Infra::from_yaml("gitops:\n", "f")
        .expect("null")
        .gitops
        .is_empty());
}

#[test]
fn the_repos_infra_file_is_valid() {
    let infra = Infra::from_yaml(
        include_str!("../../../../infra/local.yaml"),
        "infra/local.yaml",
    )
    .expect("infra/local.yaml is valid");
    assert_eq!(infra.api, default_api());
    assert_eq!((infra.masters, infra.agents), (1, 1));
    let configs = infra
        .repo_configs(Path::new("/src/orch/infra"), |_| None)
        .expect("configs");
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].repo, "/src/orch");
    assert_eq!(configs[0].path, "apps");
    assert_eq!(
        configs[0].exclude,
        ["nginx.json", "bridged-webapp.json", "rsvp.json"]
    );
    let with_key = Infra::from_yaml("gitops:\n  - repo: /r\n    ssh_key: ~/.ssh/id\n", "f")
        .expect("valid")
        .repo_configs(Path::new("/base"), |name| {
            (name == "HOME").then(|| "/home/me".to_owned())
        })
        .expect("configs");
    assert_eq!(with_key[0].ssh_key.as_deref(), Some("/home/me/.ssh/id"));
}

#[test]
fn a_missing_environment_variable_names_the_key() {
    let text = "gitops:\n  - repo: /r\n    token_env: NOPE\n";
    let infra = Infra::from_yaml(text, "f").expect("valid");
    let error = infra
        .repo_configs(Path::new("/"), |_| None)
        .expect_err("unset");
    assert_eq!(
        error.to_string(),
        "gitops[0].token_env: environment variable NOPE is not set"
    );
}

#[test]
fn errors_name_the_file_and_the_key() {
    let cases = [
        (
            "masters: 2\n",
            "infra/local.yaml: masters: must be 1, 3 or 5",
        ),
        ("agents: 0\n", "infra/local.yaml: agents: must be 1 to 34"),
        (
            "cluster: a/b\n",
            "infra/local.yaml: cluster: 'a/b' is not a name",
        ),
        (
            "api: 0.0.0.0:8080\n",
            "infra/local.yaml: api: 0.0.0.0:8080 is not",
        ),
        ("api: nonsense\n", "infra/local.yaml: api: invalid"),
        ("mastres: 3\n", "infra/local.yaml: unknown field `mastres`"),
        (
            "masters: three\n",
            "infra/local.yaml: masters: invalid type",
        ),
        (
            "provider: aws\n",
            "infra/local.yaml: provider: unknown variant `aws`",
        ),
        (
            "agent_resources: gpus:1\n",
            "infra/local.yaml: agent_resources: invalid resource 'gpus:1'",
        ),
        (
            "agents: 2\nagent_resources: ports:[1000-2000]\n",
            "infra/local.yaml: agent_resources: a ports item is allowed only with agents: 1",
        ),
        (
            "containerizers: mesos,rkt\n",
            "infra/local.yaml: containerizers: unknown containerizer 'rkt'",
        ),
        (
            "gitops:\n  - repo: /r\n    interval: soon\n",
            "infra/local.yaml: gitops[0].interval: 'soon' is not a duration",
        ),
        (
            "gitops:\n  - repo: /r\n    webhook_secret: a\n    webhook_secret_env: B\n",
            "infra/local.yaml: gitops[0].webhook_secret_env: give webhook_secret or",
        ),
        (
            "gitops:\n  - repo: /a/x\n  - repo: /b/x\n",
            "infra/local.yaml: gitops[1].name: 'x' names two repos",
        ),
        (
            "gitops:\n  - repo: /r\n    colour: red\n",
            "infra/local.yaml: gitops[0]: unknown field `colour`",
        ),
        (
            "gitops:\n  - repo: /r\n    path: /abs\n",
            "infra/local.yaml: gitops[0].path: '/abs' must be a folder inside the repo",
        ),
        (
            "vars: {A: [1, 2]}\n",
            "infra/local.yaml: vars.A: invalid type",
        ),
    ];
    for (text, want) in cases {
        let got = error_text(Infra::from_yaml(text, "infra/local.yaml"));
        assert!(
            got.starts_with(want),
            "for {text:?}:\n got {got}\nwant {want}..."
        );
    }
}

#[test]
fn providers_parse_and_their_sections_are_checked() {
    assert_eq!(
        ProviderKind::parse("local").expect("local"),
        ProviderKind::Local
    );
    assert!(ProviderKind::parse("aws").is_err());
    let ssh = "provider: ssh\nssh:\n  hosts:\n    - {address: 127.0.0.11, role: master}\n    - {address: 127.0.0.21, role: agent}\n    - {address: 127.0.0.22, role: public_agent}\n";
    let infra = Infra::from_yaml(ssh, "f").expect("valid file");
    assert_eq!(
        (infra.masters, infra.agents, infra.public_agents),
        (1, 1, 1)
    );
    let cases = [
            ("provider: docker\npublic_agents: 2\ndocker: {network: 'a b'}\n", "f: docker.network: 'a b' is not a network name"),
            ("provider: docker\ndocker: {subnet: 10.0.0.0}\n", "f: docker.subnet: '10.0.0.0' is not a CIDR subnet"),
            ("public_agents: 1\n", "f: public_agents: needs a provider with machines of their own"),
            (&format!("masters: 3\n{ssh}"), "f: masters: is 3 but ssh.hosts has 1 master host(s)"),
            ("provider: ssh\nssh: {hosts: [{address: db.example, role: master}]}\n", "f: ssh.hosts[0].ip: 'db.example' is not an IP address"),
            ("provider: ssh\nssh: {hosts: [{address: 10.0.0.1, role: agent}]}\n", "f: ssh.hosts: has 0 masters"),
            ("provider: ssh\nssh: {hosts: [{address: 10.0.0.1, role: king}]}\n", "f: ssh.hosts[0].role: unknown variant `king`"),
            ("provider: digital_ocean\n", "f: digital_ocean.region: '' is not a region slug"),
            ("provider: digital_ocean\ndigital_ocean: {region: nyc3}\n", "f: digital_ocean.ssh_keys: names no key"),
            ("provider: digital_ocean\ndigital_ocean: {region: nyc3, ssh_keys: [1]}\ngitops: [{repo: ..}]\n", "f: gitops[0].repo: must be a URL"),
        ];
    for (text, want) in cases {
        let got = error_text(Infra::from_yaml(text, "f"));
        assert!(
            got.starts_with(want),
            "for {text:?}:\n got {got}\nwant {want}..."
        );
    }
}

#[test]
fn paths_are_made_absolute_and_ports_found() {
    assert_eq!(absolute(Path::new("/a/b"), "../c/./d"), Path::new("/a/c/d"));
    assert_eq!(absolute(Path::new("/a/b"), "/x"), Path::new("/x"));
    assert!(names_ports("cpus:1; ports(*):[1-2]"));
    assert!(!names_ports("cpus:1;mem:2"));
}
