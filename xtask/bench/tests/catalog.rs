//! The whole catalog benchmark, shortened to fractions of a second per run: the report
//! has every figure and nothing failed.

use bench::catalog::{Args, main};

#[tokio::test]
async fn a_short_catalog_bench_writes_a_complete_report() {
    let dir = std::env::temp_dir().join(format!("bench-catalog-test-{}", std::process::id()));
    let out = dir.join("bench/catalog.json");
    let args = Args {
        out: out.clone(),
        duration_secs: 0.4,
        warmup_secs: 0.1,
        concurrency: 2,
        pool_size: 2,
        rate: 40.0,
        listing_rate: 40.0,
        search_rate: 40.0,
        request_timeout_ms: 5000,
        service_threads: Some(1),
    };
    let report = main(&args).await.unwrap();
    assert_eq!(report.errors, 0, "{report:#?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(json["by_id_ratio"].as_f64().unwrap() > 0.0, "{json:#}");
    assert!(json["search_p99_ms"].as_f64().unwrap() > 0.0, "{json:#}");
    for scenario in ["product_by_id", "category_listing", "search"] {
        let s = &json["scenarios"][scenario];
        for side in ["service", "raw_sql"] {
            assert!(s["max_throughput"][side]["rps"].as_f64().unwrap() > 0.0);
            assert_eq!(s["fixed_rate"][side]["target_rps"], 40.0);
            assert!(s["fixed_rate"][side]["requests"].as_u64().unwrap() > 0);
        }
        assert!(s["max_throughput"]["ratio"].as_f64().unwrap() > 0.0);
    }
    assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(json["parameters"]["demo_products"], 1056);
    std::fs::remove_dir_all(dir).unwrap();
}
