//! Tests of the ssh provider: the infra file's hosts, paths and pins.

use super::*;

fn options() -> ProviderOptions {
    ProviderOptions {
        binary: PathBuf::from("/usr/bin/orch"),
        trust_on_first_use: false,
        base_dir: PathBuf::from("/work/infra"),
        cluster_dir: PathBuf::from("/work/.orch/demo"),
        fail_at: None,
    }
}

#[test]
fn the_example_infra_file_gives_named_hosts_with_their_defaults() {
    let infra = Infra::from_yaml(include_str!("../../../../infra/ssh.yaml"), "infra/ssh.yaml")
        .expect("infra/ssh.yaml is valid");
    let provider = SshProvider::from_infra(&infra, &options());
    let names: Vec<&str> = provider.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["master-1", "agent-1", "public-agent-1"]);
    let agent = provider.host("agent-1").expect("agent-1");
    assert_eq!(agent.port, 22);
    assert_eq!(agent.user, "root");
    assert_eq!(agent.install_dir, "/opt/orch");
    assert_eq!(agent.identity, Identity::Agent);
    assert_eq!(agent.machine().id, "root@10.0.0.21:22");
    let wanted = crate::cluster_spec::wanted_machines(&infra);
    assert!(wanted.iter().all(|w| provider.host(&w.name).is_some()));
}

#[test]
fn paths_are_relative_to_the_infra_file_and_pins_are_parsed() {
    let text = "provider: ssh\nssh:\n  identity_file: keys/id\n  known_hosts: kh\n  hosts:\n    - {address: 127.0.0.11, role: master, port: 2201, host_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEkhKHAn9++/tCLksL1sn0xzkf/DMhFY7gN+y6nYP+uR x\"}\n    - {address: 127.0.0.12, role: agent, host_key: \"ssh-ed25519 AAAA\"}\n";
    let infra = Infra::from_yaml(text, "f").expect("valid");
    let provider = SshProvider::from_infra(&infra, &options());
    let master = provider.host("master-1").expect("master");
    assert_eq!(
        master.identity,
        Identity::File(PathBuf::from("/work/infra/keys/id"))
    );
    let target = provider.target(master).expect("target");
    assert_eq!(target.known_hosts, PathBuf::from("/work/infra/kh"));
    assert_eq!(target.port, 2201);
    assert!(target.pinned.is_some());
    let agent = provider.host("agent-1").expect("agent");
    assert!(matches!(
        provider.target(agent),
        Err(SshError::BadPin { .. })
    ));
}
