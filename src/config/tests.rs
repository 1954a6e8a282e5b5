use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = move |name: &str| map.get(name).cloned();
    Config::load(&Sources {
        flags: HashMap::new(),
        env: &env,
        file: None,
    })
}

#[test]
fn the_configuration_doc_holds_the_settings_table() {
    let doc = include_str!("../../docs/configuration.md");
    let table = settings_table();
    assert!(
        doc.contains(&table),
        "docs/configuration.md's table differs from SETTINGS; it should read:\n{table}"
    );
}

#[test]
fn every_default_parses_by_its_own_row() {
    for s in SETTINGS {
        if let Some(d) = s.default {
            assert!(s.parse(d).is_ok(), "{}: default {d:?}", s.name);
        }
    }
    let names: std::collections::HashSet<_> = SETTINGS.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), SETTINGS.len(), "one row per setting");
}

#[test]
fn a_redis_ca_file_must_be_pem_and_needs_rediss() {
    let dir = std::env::temp_dir().join(format!("fpgw-redis-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let missing = dir.join("missing.pem");
    let cases = [
        (
            "redis://127.0.0.1:6379",
            not_pem,
            "applies only to a rediss://",
        ),
        ("rediss://127.0.0.1:6379", not_pem, "holds no certificate"),
        (
            "rediss://127.0.0.1:6379",
            missing.to_str().unwrap(),
            "cannot read",
        ),
    ];
    for (url, file, expected) in cases {
        let err = load(&[
            ("GATEWAY_SANDBOX", "true"),
            ("GATEWAY_REDIS_URL", url),
            ("GATEWAY_REDIS_CA_FILE", file),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("GATEWAY_REDIS_CA_FILE"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_configured_is_an_error() {
    assert!(matches!(load(&[]), Err(ConfigError::NothingToServe)));
}

#[test]
fn region_picks_the_base_url_and_secret_is_redacted() {
    let c = load(&[
        ("FINGERPRINT_SECRET_API_KEY", "sk_live"),
        ("FINGERPRINT_REGION", "eu"),
    ])
    .unwrap();
    let fp = c.fingerprint.unwrap();
    assert_eq!(fp.base_url.as_str(), "https://eu.api.fpjs.io/");
    assert_eq!(fp.generation, Generation::V4);
    assert!(!format!("{fp:?}").contains("sk_live"));
}

#[test]
fn bad_values_name_the_setting() {
    let err = load(&[("GATEWAY_SANDBOX", "1"), ("FINGERPRINT_API_VERSION", "v5")]).unwrap_err();
    assert!(
        err.to_string().starts_with("FINGERPRINT_API_VERSION"),
        "{err}"
    );
    let err = load(&[
        ("GATEWAY_SANDBOX", "1"),
        ("GATEWAY_UPSTREAM_TIMEOUT", "soon"),
    ])
    .unwrap_err();
    assert!(
        err.to_string().starts_with("GATEWAY_UPSTREAM_TIMEOUT"),
        "{err}"
    );
    let err = load(&[("STYTCH_PROJECT_ID", "p")]).unwrap_err();
    assert!(err.to_string().starts_with("STYTCH_SECRET"), "{err}");
}

#[test]
fn sealed_keys_and_webhook_secrets_are_lists() {
    let key = "p2PA7MGy5tx56cnyJaFZMr96BCFwZeHjZV2EqMvTq53=";
    let c = load(&[
        ("GATEWAY_SANDBOX", "1"),
        ("FINGERPRINT_SEALED_RESULT_KEYS", &format!("{key}, {key}")),
        ("FINGERPRINT_WEBHOOK_SECRETS", "whsec_first,,whsec_second"),
    ])
    .unwrap();
    assert_eq!(c.sealed_result_keys.len(), 2);
    assert_eq!(c.webhook_secrets.len(), 2);
    assert!(!format!("{c:?}").contains("whsec_first"));
    let err = load(&[
        ("GATEWAY_SANDBOX", "1"),
        ("FINGERPRINT_SEALED_RESULT_KEYS", "c2hvcnQ="),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("32"), "{err}");
}

#[test]
fn toml_lists_are_arrays_or_strings() {
    let dir = std::env::temp_dir().join(format!("fpgw-config-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        "gateway_sandbox = true\nfingerprint_webhook_secrets = [\"whsec_a\", \"whsec_b\"]\n",
    )
    .unwrap();
    let env = |_: &str| None;
    let c = Config::load(&Sources {
        flags: HashMap::new(),
        env: &env,
        file: Some(path),
    })
    .unwrap();
    assert_eq!(c.webhook_secrets.len(), 2);
    assert_eq!(c.webhook_secrets[1].expose(), "whsec_b");
}

#[test]
fn flags_beat_env_beat_file() {
    let dir = std::env::temp_dir().join(format!("fpgw-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        "gateway_sandbox = true\nfingerprint_region = \"ap\"\ngateway_listen = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let env = |name: &str| (name == "GATEWAY_LISTEN").then(|| "127.0.0.1:2".to_owned());
    let c = Config::load(&Sources {
        flags: HashMap::from([("GATEWAY_LISTEN", "127.0.0.1:3".to_owned())]),
        env: &env,
        file: Some(path.clone()),
    })
    .unwrap();
    assert_eq!(c.listen.port(), 3);
    assert!(c.sandbox);
    let c = Config::load(&Sources {
        flags: HashMap::new(),
        env: &env,
        file: Some(path.clone()),
    })
    .unwrap();
    assert_eq!(c.listen.port(), 2);
    std::fs::write(&path, "gateway_sandbx = true\n").unwrap();
    let err = Config::load(&Sources {
        flags: HashMap::new(),
        env: &env,
        file: Some(path),
    })
    .unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
}
