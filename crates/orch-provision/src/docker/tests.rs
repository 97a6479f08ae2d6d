//! Tests of the docker provider: names, labels and container specs from the infra file.

use super::*;
use crate::infra::ProviderKind;

fn options() -> ProviderOptions {
    ProviderOptions {
        binary: "/usr/local/bin/orch".into(),
        trust_on_first_use: false,
        base_dir: "/srv/infra".into(),
        cluster_dir: "/srv/.orch/demo".into(),
        fail_at: None,
    }
}

#[test]
fn the_example_infra_file_names_network_image_and_socket() {
    let infra = Infra::from_yaml(include_str!("../../../../infra/docker.yaml"), "docker.yaml")
        .expect("infra/docker.yaml is valid");
    assert_eq!(infra.provider, ProviderKind::Docker);
    assert_eq!((infra.masters, infra.agents), (3, 2));
    let provider = DockerProvider::new(&infra, &options()).expect("provider");
    assert_eq!(provider.network, "orch-demo");
    assert_eq!(provider.image, "orch-node:demo");
    assert_eq!(provider.socket, DEFAULT_SOCKET);
    let refused = Infra {
        docker: crate::infra::DockerEntry {
            subnet: Some("10.0.0.0/31".to_owned()),
            ..Default::default()
        },
        ..infra
    };
    assert!(matches!(
        DockerProvider::new(&refused, &options()),
        Err(ProviderError::Refused(_))
    ));
}

#[test]
fn machines_get_role_addresses_and_agents_their_volume_paths() {
    let infra = Infra {
        provider: ProviderKind::Docker,
        cluster: "demo".to_owned(),
        masters: 1,
        agents: 2,
        ..Infra::default()
    };
    let provider = DockerProvider::new(&infra, &options()).expect("provider");
    let wanted = cluster_spec::wanted_machines(&infra);
    let subnet: Subnet = "172.30.9.0/24".parse().expect("subnet");
    let mountpoints = HashMap::from([(
        "agent-1".to_owned(),
        "/var/lib/docker/volumes/orch-demo-agent-1/_data".to_owned(),
    )]);
    let machines = provider
        .machines_on(&wanted, &subnet, &mountpoints)
        .expect("machines");
    let ips: Vec<String> = machines.iter().map(|m| m.ip.to_string()).collect();
    assert_eq!(ips, ["172.30.9.11", "172.30.9.101", "172.30.9.102"]);
    assert_eq!(machines[0].install_dir, INSTALL_DIR);
    assert_eq!(machines[1].install_dir, mountpoints["agent-1"]);
    assert_eq!(machines[2].install_dir, INSTALL_DIR, "no volume yet");
    assert_eq!(machines[1].id, "orch-demo-agent-1");
    let nodes = provider.node_specs(&machines);
    let master = provider.node_container(&machines[0], &nodes[0], "sha256:i");
    assert_eq!(master.volume_at, INSTALL_DIR);
    assert!(master.binds.is_empty(), "no gitops repos, no socket");
    let targets: Vec<&str> = master.files.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/etc/orch/tls/node.pem",
            "/etc/orch/tls/node-key.pem",
            "/etc/orch/tls/ca.pem",
            "/etc/orch/tls/token"
        ]
    );
    assert!(
        !master.files.iter().any(|(s, _)| s.ends_with("ca-key.pem")),
        "never the CA key"
    );
    let agent = provider.node_container(&machines[1], &nodes[1], "sha256:i");
    assert_eq!(agent.volume, "orch-demo-agent-1");
    if Path::new(DEFAULT_SOCKET).exists() {
        assert_eq!(agent.binds, [(DEFAULT_SOCKET.to_owned(), false)]);
        assert!(agent
            .args
            .ends_with(&["--containerizers".to_owned(), "mesos,docker".to_owned()]));
    }
}
