//! Hostile programs against the network isolation: reaching a server of
//! the host on 127.0.0.1 or through an abstract unix socket, reaching the
//! outside, resolving names. The box has an empty network namespace; with
//! `share_net` (the control) the same attempts get through, which proves
//! the tests would see a broken isolation.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use common::{assert_output, hostile, skip_unless_privileged, TestBox};

/// Attack: connect to a server the host runs on 127.0.0.1.
#[test]
fn connecting_to_a_host_port_on_loopback() {
    skip_unless_privileged!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener on the host");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut test_box = TestBox::hostile();
    let net = test_box.install(&hostile("net"));
    let result = test_box.run_hostile(&[&net, "ifaces", "tcp", "127.0.0.1", &port]);
    // The policy allows no AF_INET socket (nor the netlink one that lists
    // interfaces) without share_net.
    assert_output(
        &result,
        &format!("ifaces:\ntcp 127.0.0.1:{port}: EAFNOSUPPORT\n"),
    );
    // Without the policy, the namespace alone holds: the box's own loopback
    // is down, and it is not the host's anyway.
    test_box.config.seccomp = false;
    let result = test_box.run_hostile(&[&net, "ifaces", "tcp", "127.0.0.1", &port]);
    assert_output(
        &result,
        &format!("ifaces: lo(down)\ntcp 127.0.0.1:{port}: ENETUNREACH\n"),
    );
    test_box.config.seccomp = true;
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(err) if err.kind() == ErrorKind::WouldBlock),
        "the host's server got a connection from the box: {accepted:?}"
    );

    // Control: sharing the host's network, the same connection arrives.
    test_box.config.share_net = true;
    let result = test_box.run_hostile(&[&net, "tcp", "127.0.0.1", &port]);
    assert_output(&result, &format!("tcp 127.0.0.1:{port}: SUCCEEDED\n"));
    assert!(listener.accept().is_ok(), "the control did not connect");
    test_box.remove();
}

/// Attack: connect to the host's abstract unix socket (scoped by network namespace).
#[test]
fn connecting_to_a_host_abstract_unix_socket() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let name = format!("isobox-abstract-{}", test_box.marker);
    let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&address).expect("an abstract socket on the host");
    listener.set_nonblocking(true).unwrap();
    let net = test_box.install(&hostile("net"));
    let result = test_box.run_hostile(&[&net, "abstract", &name]);
    assert_output(&result, &format!("abstract @{name}: ECONNREFUSED\n"));
    assert!(
        matches!(listener.accept(), Err(err) if err.kind() == ErrorKind::WouldBlock),
        "the host's socket got a connection from the box"
    );

    test_box.config.share_net = true;
    let result = test_box.run_hostile(&[&net, "abstract", &name]);
    assert_output(&result, &format!("abstract @{name}: SUCCEEDED\n"));
    assert!(listener.accept().is_ok(), "the control did not connect");
    test_box.remove();
}

/// Attack: connect to addresses outside the host, over TCP and UDP.
#[test]
fn connecting_to_an_outside_address() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    let net = test_box.install(&hostile("net"));
    let words = [
        &net, "tcp", "1.1.1.1", "443", "udp", "8.8.8.8", "53", "tcp", "10.0.0.1", "80",
    ];
    let result = test_box.run_hostile(&words);
    // No AF_INET socket without share_net...
    assert_output(
        &result,
        "tcp 1.1.1.1:443: EAFNOSUPPORT\nudp 8.8.8.8:53: EAFNOSUPPORT\n\
         tcp 10.0.0.1:80: EAFNOSUPPORT\n",
    );
    // ...and without the policy, nowhere to send one.
    test_box.config.seccomp = false;
    let result = test_box.run_hostile(&words);
    assert_output(
        &result,
        "tcp 1.1.1.1:443: ENETUNREACH\nudp 8.8.8.8:53: ENETUNREACH\n\
         tcp 10.0.0.1:80: ENETUNREACH\n",
    );
    test_box.remove();
}

/// Attack: resolve names (DNS and the hosts file) from Python.
#[test]
fn dns_lookup() {
    skip_unless_privileged!();
    let mut test_box = TestBox::hostile();
    test_box.allow_python();
    let dns = test_box.install(&hostile("dns.py"));
    let result = test_box.run_hostile(&["/usr/bin/python3", &dns]);
    assert_output(
        &result,
        "resolve example.com: gaierror\n\
         resolve localhost: gaierror\n\
         read /etc/resolv.conf: FileNotFoundError\n\
         read /etc/hosts: FileNotFoundError\n\
         udp 8.8.8.8:53: OSError\n",
    );
    test_box.remove();
}
