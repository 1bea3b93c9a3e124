//! The app registration and the Graph client as configured: the written
//! form, the defaults, unknown fields, the certificate files and the
//! PKCS#12 password.

use std::{path::PathBuf, time::Duration};

use chrono::{DateTime, Utc};
use continuity_core::{ManualClock, secret::SecretRef};
use continuity_graph::{
    AppRegistrationSettings, AssertionAlgorithm, Authority, CertificateSettings, DeleteMode,
    GraphConfig, GraphError, GraphSettings, MailboxLimits,
};
use continuity_test_support::{
    TempDir,
    app_cert::{pkcs12, rsa_cert},
};

fn clock() -> ManualClock {
    let now: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
    ManualClock::new(now)
}

fn write(dir: &TempDir, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const APP: &str = r#"
    tenant = "contoso.onmicrosoft.com"
    client_id = "11111111-2222-3333-4444-555555555555"
    authority = "us_government"
    algorithm = "rs256"
    assertion_lifetime = "5m"
    certificate = { pem = "/etc/continuity/app.crt", key = "/etc/continuity/app.key" }
"#;

#[test]
fn a_toml_example_reads_to_the_values_written() {
    let app: AppRegistrationSettings = toml::from_str(APP).unwrap();
    assert_eq!(
        app,
        AppRegistrationSettings {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            authority: Authority::UsGovernment,
            algorithm: AssertionAlgorithm::Rs256,
            assertion_lifetime: Duration::from_secs(300),
            certificate: CertificateSettings {
                pem: Some("/etc/continuity/app.crt".into()),
                key: Some("/etc/continuity/app.key".into()),
                ..CertificateSettings::default()
            },
        }
    );
    let custom: Authority =
        toml::from_str::<toml::Table>("a = { custom = \"http://127.0.0.1:1\" }").unwrap()["a"]
            .clone()
            .try_into()
            .unwrap();
    assert_eq!(custom, Authority::Custom("http://127.0.0.1:1".into()));

    let graph: GraphSettings = toml::from_str(
        r#"
        endpoint = "http://127.0.0.1:9/v1.0"
        request_timeout = "20s"
        connect_timeout = "3s"
        limits = { requests_per_window = 5000, window = "5m" }
        page_size = 10
        max_pages = 3
        delete_mode = "move_to_deleted_items"
        max_response_bytes = 65536
        allow_plain_http = true
        user_agent = "acme/1"
        "#,
    )
    .unwrap();
    let config = graph.config(&Authority::Public).unwrap();
    assert_eq!(config.endpoint, "http://127.0.0.1:9/v1.0");
    assert_eq!(
        (config.request_timeout, config.connect_timeout),
        (Duration::from_secs(20), Duration::from_secs(3))
    );
    assert_eq!(
        config.limits,
        MailboxLimits {
            requests_per_window: 5000,
            window: Duration::from_secs(300),
            ..MailboxLimits::default()
        }
    );
    assert_eq!((config.page_size, config.max_pages), (10, 3));
    assert_eq!(config.delete_mode, DeleteMode::MoveToDeletedItems);
    assert_eq!(config.max_response_bytes, 65536);
    assert!(config.allow_plain_http);
    assert_eq!(config.user_agent, "acme/1");
}

#[test]
fn defaults_are_the_constructors() {
    let app: AppRegistrationSettings = toml::from_str(
        "tenant = \"t.example\"\nclient_id = \"c\"\ncertificate = { pem = \"a.pem\" }",
    )
    .unwrap();
    assert_eq!(app.authority, Authority::Public);
    assert_eq!(app.algorithm, AssertionAlgorithm::Ps256);
    assert_eq!(app.assertion_lifetime, Duration::from_secs(600));

    let graph: GraphSettings = toml::from_str("").unwrap();
    assert_eq!(graph, GraphSettings::default());
    for authority in [Authority::Public, Authority::UsGovernment, Authority::China] {
        let built = graph.config(&authority).unwrap();
        let made = GraphConfig::for_authority(&authority).unwrap();
        assert_eq!(built.endpoint, made.endpoint);
        assert_eq!(built.request_timeout, made.request_timeout);
        assert_eq!(built.connect_timeout, made.connect_timeout);
        assert_eq!(built.limits, made.limits);
        assert_eq!(built.page_size, made.page_size);
        assert_eq!(built.max_pages, made.max_pages);
        assert_eq!(built.delete_mode, made.delete_mode, "{authority:?}");
        assert_eq!(built.max_response_bytes, made.max_response_bytes);
        assert_eq!(built.allow_plain_http, made.allow_plain_http);
        assert_eq!(built.user_agent, made.user_agent);
    }
    let made = GraphConfig::new("https://graph.microsoft.com/v1.0");
    assert_eq!(
        (made.request_timeout, made.page_size, made.max_pages),
        (Duration::from_secs(30), 50, 20)
    );
    // A configured endpoint keeps the cloud's way of deleting.
    let national = GraphSettings {
        endpoint: Some("https://graph.microsoft.us/v1.0".into()),
        ..GraphSettings::default()
    };
    let config = national.config(&Authority::UsGovernment).unwrap();
    assert_eq!(config.delete_mode, DeleteMode::MoveToDeletedItems);
    let e = GraphSettings::default()
        .config(&Authority::Custom("http://127.0.0.1:1".into()))
        .unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::InvalidConfig {
                field: "endpoint",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let e = toml::from_str::<AppRegistrationSettings>(&format!("{APP}\nscope = \"x\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `scope`"), "{e}");
    let e = toml::from_str::<AppRegistrationSettings>(
        "tenant = \"t\"\nclient_id = \"c\"\ncertificate = { cert = \"a.pem\" }",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown field `cert`"), "{e}");
    let e = toml::from_str::<GraphSettings>("timeout = \"5s\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `timeout`"), "{e}");
    let e = toml::from_str::<GraphSettings>("limits = { per_mailbox = 2 }")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `per_mailbox`"), "{e}");
    let e = toml::from_str::<AppRegistrationSettings>(&APP.replace("us_government", "germany"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown variant `germany`"), "{e}");
}

#[test]
fn the_certificate_loads_from_pem_files() {
    let dir = TempDir::new("graph-settings-pem");
    let cert = rsa_cert("continuity-monitor");
    let mut app: AppRegistrationSettings = toml::from_str(APP).unwrap();
    app.certificate = CertificateSettings {
        pem: Some(write(&dir, "app.crt", &cert.cert_pem)),
        key: Some(write(&dir, "app.key", &cert.pkcs8_pem)),
        ..CertificateSettings::default()
    };
    let built = app.build(&clock()).unwrap();
    assert_eq!(built.authority(), &Authority::UsGovernment);
    assert_eq!(built.algorithm(), AssertionAlgorithm::Rs256);
    assert_eq!(built.client_id(), "11111111-2222-3333-4444-555555555555");
    assert!(!format!("{built:?}").contains("PRIVATE KEY"));
    // One file with both.
    app.certificate = CertificateSettings {
        pem: Some(write(
            &dir,
            "both.pem",
            format!("{}{}", cert.cert_pem, cert.pkcs1_pem),
        )),
        ..CertificateSettings::default()
    };
    app.build(&clock()).unwrap();

    app.certificate.key = Some(dir.path().join("absent.key"));
    let e = app.build(&clock()).unwrap_err();
    assert!(e.to_string().contains("absent.key"), "{e}");
    app.assertion_lifetime = Duration::from_secs(3600);
    app.certificate.key = None;
    let e = app.build(&clock()).unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::InvalidConfig {
                field: "assertion_lifetime",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_pkcs12_password_comes_from_the_environment_or_a_file_and_is_never_shown() {
    let dir = TempDir::new("graph-settings-p12");
    let cert = rsa_cert("continuity-monitor");
    // cargo sets CARGO_PKG_NAME for every test run.
    let pfx = write(&dir, "app.pfx", pkcs12(&cert, env!("CARGO_PKG_NAME")));
    let mut app: AppRegistrationSettings = toml::from_str(APP).unwrap();
    app.certificate = CertificateSettings {
        pkcs12: Some(pfx.clone()),
        password: Some(SecretRef::env("CARGO_PKG_NAME")),
        ..CertificateSettings::default()
    };
    app.build(&clock()).unwrap();

    let from_file = write(&dir, "app-2.pfx", pkcs12(&cert, "pfx-s3cret"));
    let password = write(&dir, "pfx-password", "pfx-s3cret\n");
    app.certificate.pkcs12 = Some(from_file);
    app.certificate.password = Some(SecretRef::file(&password));
    let built = app.build(&clock()).unwrap();
    for shown in [format!("{app:?}"), format!("{built:?}")] {
        assert!(!shown.contains("pfx-s3cret"), "{shown}");
    }

    app.certificate.password = Some(SecretRef::env("CONTINUITY_TEST_PFX_PASSWORD_NOT_SET"));
    let e = app.build(&clock()).unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::InvalidConfig {
                field: "certificate.password",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("env:CONTINUITY_TEST_PFX_PASSWORD_NOT_SET"),
        "{e}"
    );

    // Both forms at once, or neither, say what is expected.
    app.certificate.pem = Some(pfx);
    let e = app.build(&clock()).unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::InvalidConfig {
                field: "certificate",
                ..
            }
        ),
        "{e:?}"
    );
    app.certificate = CertificateSettings::default();
    let e = app.build(&clock()).unwrap_err();
    assert!(e.to_string().contains("pkcs12"), "{e}");
}
