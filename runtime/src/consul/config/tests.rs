//! The configuration read from variables and set from code, as a user sees it.

use super::env::ENV_VARS;
use super::*;
use std::collections::HashMap;

#[cfg(feature = "tls")]
fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/consul/testdata")
        .join(name)
}

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn from(vars: &[(&str, &str)]) -> Result<Config, Error> {
    Config::from_lookup(lookup(vars))
}

fn err_of(vars: &[(&str, &str)]) -> (&'static str, String) {
    match from(vars) {
        Err(Error::Config { setting, message }) => (setting, message),
        other => panic!("expected a config error for {vars:?}, got {other:?}"),
    }
}

struct TempFile(PathBuf);
impl TempFile {
    fn new(contents: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("discoverable-consul-test-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn consul_config_defaults() {
    let c = from(&[]).unwrap();
    assert_eq!(c.address(), "http://127.0.0.1:8500");
    assert!(c.token().is_none());
    assert!(!c.is_https());
    assert!(c.unix_socket().is_none());
    assert!(!c.insecure_skip_verify());
    assert_eq!(c.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
    assert!(c.namespace().is_none() && c.partition().is_none());
    assert!(c.basic_auth_user().is_none());
    assert!(c.ca_source().is_none() && c.client_cert().is_none());
    assert_eq!(Config::default().address(), "http://127.0.0.1:8500");
}

#[test]
fn consul_config_empty_values_are_unset() {
    let vars: Vec<(&str, &str)> = ENV_VARS.iter().map(|k| (*k, "")).collect();
    let c = from(&vars).unwrap();
    assert_eq!(c.address(), "http://127.0.0.1:8500");
    assert!(c.token().is_none());
}

#[test]
#[cfg(feature = "tls")]
fn consul_config_addresses() {
    let cases = [
        ("127.0.0.1:8500", "http://127.0.0.1:8500"),
        ("localhost:8500", "http://localhost:8500"),
        (
            "consul.service.consul:8500",
            "http://consul.service.consul:8500",
        ),
        ("[::1]:8500", "http://[::1]:8500"),
        ("http://10.0.0.1:8500", "http://10.0.0.1:8500"),
        ("http://10.0.0.1:8500/", "http://10.0.0.1:8500"),
        ("HTTP://10.0.0.1:8500", "http://10.0.0.1:8500"),
        ("https://consul.example:8501", "https://consul.example:8501"),
        ("https://consul.example", "https://consul.example"),
        ("http://gw.example/consul", "http://gw.example/consul"),
        ("http://gw.example:80/consul/", "http://gw.example/consul"),
    ];
    for (addr, want) in cases {
        let c = from(&[("CONSUL_HTTP_ADDR", addr)]).unwrap();
        assert_eq!(c.address(), want, "{addr}");
    }
    // Without a port the scheme's port applies, as in Consul's `api` (Go's URL rules):
    // 80 for http, 443 for https.
    let c = from(&[("CONSUL_HTTP_ADDR", "127.0.0.1")]).unwrap();
    assert_eq!(c.address(), "http://127.0.0.1");
}

#[test]
fn consul_config_a_broken_scheme_is_refused() {
    for addr in ["http//x", "http:/x:8500", "127.0.0.1:8500/v1"] {
        match from(&[("CONSUL_HTTP_ADDR", addr)]) {
            Err(Error::Config { setting, message }) => {
                assert_eq!(setting, "CONSUL_HTTP_ADDR");
                assert!(message.contains("scheme"), "{addr}: {message}");
            }
            other => panic!("{addr}: expected a Config error, got {other:?}"),
        }
    }
}

#[test]
#[cfg(feature = "tls")]
fn consul_config_ssl_switches_scheme_but_never_back() {
    let c = from(&[
        ("CONSUL_HTTP_ADDR", "10.0.0.1:8501"),
        ("CONSUL_HTTP_SSL", "true"),
    ])
    .unwrap();
    assert_eq!(c.address(), "https://10.0.0.1:8501");
    assert!(c.is_https());
    let c = from(&[
        ("CONSUL_HTTP_ADDR", "http://10.0.0.1:8501"),
        ("CONSUL_HTTP_SSL", "1"),
    ])
    .unwrap();
    assert_eq!(
        c.address(),
        "https://10.0.0.1:8501",
        "TLS asked for explicitly wins"
    );
    let c = from(&[
        ("CONSUL_HTTP_ADDR", "https://10.0.0.1:8501"),
        ("CONSUL_HTTP_SSL", "false"),
    ])
    .unwrap();
    assert_eq!(c.address(), "https://10.0.0.1:8501");
    let c = from(&[("CONSUL_HTTP_SSL", "T")]).unwrap();
    assert_eq!(c.address(), "https://127.0.0.1:8500");
}

#[test]
fn consul_config_go_booleans() {
    for t in ["1", "t", "T", "TRUE", "true", "True"] {
        assert!(parse_go_bool("X", t).unwrap(), "{t}");
    }
    for f in ["0", "f", "F", "FALSE", "false", "False"] {
        assert!(!parse_go_bool("X", f).unwrap(), "{f}");
    }
    for bad in ["yes", "on", "tRUE", "2", " true"] {
        assert!(parse_go_bool("X", bad).is_err(), "{bad}");
    }
    let (setting, message) = err_of(&[("CONSUL_HTTP_SSL", "yes")]);
    assert_eq!(setting, "CONSUL_HTTP_SSL");
    assert!(
        message.contains("`yes` is not a boolean; expected"),
        "{message}"
    );
    let (setting, _) = err_of(&[("CONSUL_HTTP_SSL_VERIFY", "nope")]);
    assert_eq!(setting, "CONSUL_HTTP_SSL_VERIFY");
}

#[test]
fn consul_config_ssl_verify() {
    assert!(
        from(&[("CONSUL_HTTP_SSL_VERIFY", "false")])
            .unwrap()
            .insecure_skip_verify()
    );
    assert!(
        from(&[("CONSUL_HTTP_SSL_VERIFY", "0")])
            .unwrap()
            .insecure_skip_verify()
    );
    assert!(
        !from(&[("CONSUL_HTTP_SSL_VERIFY", "true")])
            .unwrap()
            .insecure_skip_verify()
    );
}

#[test]
fn consul_config_bad_addresses() {
    for (addr, needle) in [
        (
            "ftp://10.0.0.1:21",
            "unknown scheme `ftp`; expected http, https or unix",
        ),
        ("10.0.0.1:notaport", "is not a valid address"),
        ("http://", "is not a valid address"),
        ("http://10.0.0.1:8500?x=1", "has a query or fragment"),
        ("http://10.0.0.1:8500#frag", "has a query or fragment"),
        ("unix://", "has no socket path"),
        ("   ", "the address is empty"),
    ] {
        let (setting, message) = err_of(&[("CONSUL_HTTP_ADDR", addr)]);
        assert_eq!(setting, "CONSUL_HTTP_ADDR");
        assert!(message.contains(needle), "{addr}: {message}");
        assert!(message.contains("expected"), "{addr}: {message}");
    }
    // User information is refused without echoing the password.
    let (_, message) = err_of(&[("CONSUL_HTTP_ADDR", "http://bob:hunter22@10.0.0.1:8500")]);
    assert!(!message.contains("hunter22"), "{message}");
    assert!(message.contains("CONSUL_HTTP_AUTH"), "{message}");
}

#[cfg(unix)]
#[test]
fn consul_config_unix_socket() {
    let c = from(&[("CONSUL_HTTP_ADDR", "unix:///run/consul/http.sock")]).unwrap();
    assert_eq!(c.address(), "unix:///run/consul/http.sock");
    assert_eq!(c.unix_socket(), Some(Path::new("/run/consul/http.sock")));
    assert!(!c.is_https());
}

#[test]
fn consul_config_token_and_token_file() {
    let c = from(&[("CONSUL_HTTP_TOKEN", "tok-env-1234")]).unwrap();
    assert_eq!(c.token().unwrap().secret(), "tok-env-1234");

    let file = TempFile::new(b"  tok-file-5678\n");
    let c = from(&[("CONSUL_HTTP_TOKEN_FILE", file.path())]).unwrap();
    assert_eq!(
        c.token().unwrap().secret(),
        "tok-file-5678",
        "read once and trimmed"
    );

    // Both: the file wins, as Consul's api.NewClient and the CLI's -token-file do.
    let c = from(&[
        ("CONSUL_HTTP_TOKEN", "tok-env-1234"),
        ("CONSUL_HTTP_TOKEN_FILE", file.path()),
    ])
    .unwrap();
    assert_eq!(c.token().unwrap().secret(), "tok-file-5678");

    // An empty file falls back to the variable.
    let empty = TempFile::new(b" \n");
    let c = from(&[
        ("CONSUL_HTTP_TOKEN", "tok-env-1234"),
        ("CONSUL_HTTP_TOKEN_FILE", empty.path()),
    ])
    .unwrap();
    assert_eq!(c.token().unwrap().secret(), "tok-env-1234");
    let c = from(&[("CONSUL_HTTP_TOKEN_FILE", empty.path())]).unwrap();
    assert!(c.token().is_none());

    let (setting, message) = err_of(&[
        ("CONSUL_HTTP_TOKEN", "tok-env-1234"),
        ("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/discoverable/token"),
    ]);
    assert_eq!(setting, "CONSUL_HTTP_TOKEN_FILE");
    assert!(
        message.contains("/nonexistent/discoverable/token"),
        "{message}"
    );
    assert!(message.contains("expected a readable file"), "{message}");
    assert!(!message.contains("tok-env-1234"));

    let (setting, message) = err_of(&[("CONSUL_HTTP_TOKEN", "two words")]);
    assert_eq!(setting, "CONSUL_HTTP_TOKEN");
    assert!(!message.contains("two words"), "{message}");
}

#[test]
fn consul_config_env_token_replaces_token_file_from_code() {
    let file = TempFile::new(b"tok-file-5678");
    let c = Config::builder()
        .token_file(file.path())
        .apply_lookup(lookup(&[("CONSUL_HTTP_TOKEN", "tok-env-1234")]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(c.token().unwrap().secret(), "tok-env-1234");
    // Builder alone: the file wins over the token, as with the variables.
    let c = Config::builder()
        .token("tok-code")
        .token_file(file.path())
        .build()
        .unwrap();
    assert_eq!(c.token().unwrap().secret(), "tok-file-5678");
}

#[test]
fn consul_config_basic_auth() {
    let c = from(&[("CONSUL_HTTP_AUTH", "alice:pa:ss")]).unwrap();
    let (user, pass) = c.basic_auth().unwrap();
    assert_eq!((user, pass.secret()), ("alice", "pa:ss"));
    let c = from(&[("CONSUL_HTTP_AUTH", "alice")]).unwrap();
    let (user, pass) = c.basic_auth().unwrap();
    assert_eq!((user, pass.secret()), ("alice", ""));
    assert_eq!(c.basic_auth_user(), Some("alice"));
    let (setting, _) = match Config::builder().basic_auth("a:b", "c").build() {
        Err(Error::Config { setting, message }) => (setting, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(setting, "basic_auth");
}

#[test]
fn consul_config_namespace_partition() {
    let c = from(&[
        ("CONSUL_NAMESPACE", "team-a"),
        ("CONSUL_PARTITION", "part-1"),
    ])
    .unwrap();
    assert_eq!(c.namespace(), Some("team-a"));
    assert_eq!(c.partition(), Some("part-1"));
}

#[test]
fn consul_config_tls_server_name() {
    for (raw, want) in [
        ("server.dc1.consul", Some("server.dc1.consul")),
        ("server.dc1.consul:8501", Some("server.dc1.consul")),
        ("Consul.Example", Some("consul.example")),
        ("127.0.0.1", None), // same IP as the address: nothing to override
        ("[::1]:8501", None),
    ] {
        let addr = if raw.contains("::1") {
            "[::1]:8500"
        } else {
            "127.0.0.1:8500"
        };
        let c = from(&[("CONSUL_HTTP_ADDR", addr), ("CONSUL_TLS_SERVER_NAME", raw)]).unwrap();
        assert_eq!(c.tls_server_name(), want, "{raw}");
    }
    let (setting, message) = err_of(&[("CONSUL_TLS_SERVER_NAME", "10.9.9.9")]);
    assert_eq!(setting, "CONSUL_TLS_SERVER_NAME");
    assert!(message.contains("expected a DNS name"), "{message}");
    let (setting, _) = err_of(&[("CONSUL_TLS_SERVER_NAME", "bad name!")]);
    assert_eq!(setting, "CONSUL_TLS_SERVER_NAME");
}

#[test]
#[cfg(feature = "tls")]
fn consul_config_ca_file_and_path() {
    let ca = testdata("ca.pem");
    let c = from(&[("CONSUL_CACERT", ca.to_str().unwrap())]).unwrap();
    assert_eq!(c.ca_source(), Some(ca.as_path()));
    assert_eq!(c.ca().unwrap().pems.len(), 1);

    let dir = testdata("capath");
    let c = from(&[("CONSUL_CAPATH", dir.to_str().unwrap())]).unwrap();
    assert_eq!(c.ca_source(), Some(dir.as_path()));
    assert!(!c.ca().unwrap().pems.is_empty());

    // CONSUL_CACERT wins over CONSUL_CAPATH, as in go-rootcerts.
    let c = from(&[
        ("CONSUL_CACERT", ca.to_str().unwrap()),
        ("CONSUL_CAPATH", dir.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(c.ca_source(), Some(ca.as_path()));

    let (setting, message) = err_of(&[("CONSUL_CACERT", "/nonexistent/ca.pem")]);
    assert_eq!(setting, "CONSUL_CACERT");
    assert!(
        message.contains("cannot read /nonexistent/ca.pem"),
        "{message}"
    );
    let not_pem = TempFile::new(b"hello");
    let (setting, message) = err_of(&[("CONSUL_CACERT", not_pem.path())]);
    assert_eq!(setting, "CONSUL_CACERT");
    assert!(message.contains("holds no PEM certificate"), "{message}");
    let (setting, _) = err_of(&[("CONSUL_CAPATH", "/nonexistent/dir")]);
    assert_eq!(setting, "CONSUL_CAPATH");
    let (setting, message) = err_of(&[("CONSUL_CAPATH", testdata("").to_str().unwrap())]);
    assert_eq!(
        setting, "CONSUL_CAPATH",
        "a directory with key files is refused"
    );
    assert!(message.contains("holds no PEM certificate"), "{message}");
}

#[test]
#[cfg(feature = "tls")]
fn consul_config_client_cert() {
    let cert = testdata("client.pem");
    let key = testdata("client-key.pem");
    let c = from(&[
        ("CONSUL_CLIENT_CERT", cert.to_str().unwrap()),
        ("CONSUL_CLIENT_KEY", key.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(c.client_cert(), Some(cert.as_path()));
    assert!(!format!("{c:?}").contains("PRIVATE KEY"));

    let (setting, message) = err_of(&[("CONSUL_CLIENT_CERT", cert.to_str().unwrap())]);
    assert_eq!(setting, "CONSUL_CLIENT_KEY");
    assert!(message.contains("expected both"), "{message}");
    let (setting, _) = err_of(&[("CONSUL_CLIENT_KEY", key.to_str().unwrap())]);
    assert_eq!(setting, "CONSUL_CLIENT_CERT");
    let (setting, message) = err_of(&[
        ("CONSUL_CLIENT_CERT", cert.to_str().unwrap()),
        ("CONSUL_CLIENT_KEY", cert.to_str().unwrap()),
    ]);
    assert_eq!(setting, "CONSUL_CLIENT_KEY");
    assert!(message.contains("not a usable private key"), "{message}");
    let (setting, _) = err_of(&[
        ("CONSUL_CLIENT_CERT", key.to_str().unwrap()),
        ("CONSUL_CLIENT_KEY", key.to_str().unwrap()),
    ]);
    assert_eq!(setting, "CONSUL_CLIENT_CERT");
}

#[test]
#[cfg(feature = "tls")]
fn consul_config_builder() {
    let ca = testdata("ca.pem");
    let c = Config::builder()
        .address("consul.example:8501")
        .https(true)
        .token("tok-builder-9999")
        .ca_file(&ca)
        .client_cert(testdata("client.pem"), testdata("client-key.pem"))
        .tls_server_name("server.dc1.consul")
        .insecure_skip_verify(true)
        .namespace("ns1")
        .partition("p1")
        .basic_auth("bob", "pw-secret-1")
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(c.address(), "https://consul.example:8501");
    assert_eq!(c.token().unwrap().secret(), "tok-builder-9999");
    assert_eq!(c.ca_source(), Some(ca.as_path()));
    assert_eq!(c.tls_server_name(), Some("server.dc1.consul"));
    assert!(c.insecure_skip_verify());
    assert_eq!(c.namespace(), Some("ns1"));
    assert_eq!(c.partition(), Some("p1"));
    assert_eq!(c.basic_auth_user(), Some("bob"));
    assert_eq!(c.request_timeout(), Duration::from_millis(300));

    let (setting, message) = match Config::builder().request_timeout(Duration::ZERO).build() {
        Err(Error::Config { setting, message }) => (setting, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(setting, "request_timeout");
    assert!(message.contains("expected a duration greater than zero"));
    let (setting, _) = match Config::builder().address("gopher://x:1").build() {
        Err(Error::Config { setting, message }) => (setting, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(setting, "address");
}

#[test]
fn consul_config_env_overrides_builder() {
    let c = Config::builder()
        .address("10.0.0.1:8500")
        .namespace("from-code")
        .request_timeout(Duration::from_secs(2))
        .apply_lookup(lookup(&[
            ("CONSUL_HTTP_ADDR", "10.0.0.2:8500"),
            ("CONSUL_NAMESPACE", ""),
        ]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(c.address(), "http://10.0.0.2:8500");
    assert_eq!(c.namespace(), Some("from-code"), "empty means unset");
    assert_eq!(c.request_timeout(), Duration::from_secs(2));
}

#[test]
fn consul_config_never_shows_secrets() {
    let c = from(&[
        ("CONSUL_HTTP_TOKEN", "tok-0a1b2c3d-secret"),
        ("CONSUL_HTTP_AUTH", "bob:pw-0a1b2c3d-secret"),
    ])
    .unwrap();
    let shown = format!("{c:?} {:?}", Config::builder().token("tok-0a1b2c3d-secret"));
    assert!(!shown.contains("0a1b2c3d"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert_eq!(c.token().unwrap().to_string(), "<redacted>");
    assert_eq!(
        c.secrets(),
        vec![
            "tok-0a1b2c3d-secret".to_owned(),
            "pw-0a1b2c3d-secret".to_owned()
        ]
    );
}

/// A build without the `tls` feature refuses every setting that asks for TLS, naming the
/// setting and the feature, and never reaches the agent over plain HTTP instead.
#[test]
#[cfg(not(feature = "tls"))]
fn consul_config_without_the_tls_feature_refuses_every_tls_setting() {
    for (vars, setting) in [
        (
            &[("CONSUL_HTTP_ADDR", "https://consul.internal:8501")][..],
            "CONSUL_HTTP_ADDR",
        ),
        (
            &[
                ("CONSUL_HTTP_ADDR", "127.0.0.1:8501"),
                ("CONSUL_HTTP_SSL", "true"),
            ][..],
            "CONSUL_HTTP_SSL",
        ),
        (
            &[("CONSUL_CACERT", "/etc/consul/ca.pem")][..],
            "CONSUL_CACERT",
        ),
        (&[("CONSUL_CAPATH", "/etc/consul/ca")][..], "CONSUL_CAPATH"),
        (
            &[
                ("CONSUL_CLIENT_CERT", "/etc/consul/client.pem"),
                ("CONSUL_CLIENT_KEY", "/etc/consul/client.key"),
            ][..],
            "CONSUL_CLIENT_CERT",
        ),
    ] {
        let (named, message) = err_of(vars);
        assert_eq!(named, setting, "{vars:?}");
        assert!(message.contains("`tls` feature"), "{message}");
        assert!(message.contains(r#"features = ["tls"]"#), "{message}");
    }
    let builder = Config::builder()
        .address("https://consul.internal:8501")
        .build();
    assert!(
        matches!(
            &builder,
            Err(Error::Config {
                setting: "address",
                ..
            })
        ),
        "{builder:?}"
    );
    // Plain HTTP, and the switches that only matter with HTTPS, still work.
    let c = from(&[
        ("CONSUL_HTTP_ADDR", "10.0.0.7:8500"),
        ("CONSUL_HTTP_SSL", "false"),
        ("CONSUL_HTTP_SSL_VERIFY", "false"),
    ])
    .unwrap();
    assert_eq!(c.address(), "http://10.0.0.7:8500");
    assert!(!c.is_https());
}

#[test]
fn consul_config_an_ipv6_address_without_brackets_is_shown_with_them() {
    for (raw, fix) in [
        ("::1:18700", "[::1]:18700"),
        ("http://fd00::7:8500", "[fd00::7]:8500"),
    ] {
        let (setting, message) = err_of(&[("CONSUL_HTTP_ADDR", raw)]);
        assert_eq!(setting, "CONSUL_HTTP_ADDR");
        assert!(
            message.contains(&format!("write {fix}")),
            "{raw}: {message}"
        );
    }
    // With brackets it is an address.
    assert_eq!(
        from(&[("CONSUL_HTTP_ADDR", "[::1]:18700")])
            .unwrap()
            .address(),
        "http://[::1]:18700"
    );
}
