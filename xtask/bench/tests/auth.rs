//! The whole auth benchmark, shortened to fractions of a second per run: real user and
//! catalog services, a real token, every figure in the report, nothing failed.

use bench::auth::{Args, main};

#[tokio::test]
async fn a_short_auth_bench_writes_a_complete_report() {
    let dir = std::env::temp_dir().join(format!("bench-auth-test-{}", std::process::id()));
    let out = dir.join("bench/auth.json");
    let args = Args {
        out: out.clone(),
        duration_secs: 0.5,
        warmup_secs: 0.1,
        rounds: 2,
        round_secs: Some(0.3),
        unloaded_secs: 0.2,
        rate: 40.0,
        concurrency: 2,
        login_concurrency: Some(2),
        pool_size: 2,
        request_timeout_ms: 20_000,
        service_threads: Some(1),
    };
    let report = main(&args).await.unwrap();
    assert_eq!(report.errors, 0, "{report:#?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        json["argon2_hashes_per_s"].as_f64().unwrap() > 0.0,
        "{json:#}"
    );
    assert!(json["verify_p99_ratio"].as_f64().unwrap() > 0.0, "{json:#}");
    // The user service's production parameters, through its own hasher.
    let params = &json["argon2"]["params"];
    assert!(params["memory_kib"].as_u64().unwrap() >= 19_456, "{params}");
    assert!(params["iterations"].as_u64().unwrap() >= 2, "{params}");
    assert_eq!(params["meets_owasp_minimum"], true);
    let login = &json["login"];
    assert_eq!(login["request"], "POST /login");
    assert!(login["stats"]["requests"].as_u64().unwrap() > 0, "{login}");
    assert!(
        login["login_to_hash_ratio"].as_f64().unwrap() > 0.0,
        "{login}"
    );
    let v = &json["verification"];
    assert!(
        v["jwks_url"]
            .as_str()
            .unwrap()
            .ends_with("/.well-known/jwks.json")
    );
    for side in ["with_token", "without_token"] {
        assert_eq!(v[side]["target_rps"], 40.0, "{v}");
        assert!(v[side]["requests"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(v["unloaded"][side]["workers"], 1, "{v}");
        assert!(v["unloaded"][side]["requests"].as_u64().unwrap() > 0, "{v}");
    }
    assert_eq!(v["with_token_request"], "GET /admin/products/{id}");
    assert!(v["unloaded"]["p50_ratio"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(v["rounds"][0]["first"], "without_token");
    assert_eq!(v["rounds"][1]["first"], "with_token");
    assert!(v["in_process"]["verify_us"].as_f64().unwrap() > 0.0, "{v}");
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(json["parameters"]["demo_products"], 1056);
    std::fs::remove_dir_all(dir).unwrap();
}
