//! The operator API's 405 over real HTTP: a JSON error like its other errors, naming the methods
//! the path takes.

use crate::common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn wrong_method_gets_a_json_error_naming_the_allowed_methods() {
    let mut gw = TestGateway::start().await;
    let base = format!("http://{}", gw.running().operator_addr.unwrap());
    let client = reqwest::Client::new();

    let resp = client
        .delete(format!("{base}/api/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], "error");
    let text = body["error"].as_str().unwrap();
    assert!(
        text.contains("DELETE")
            && text.contains("/api/profile")
            && text.contains("GET")
            && text.contains("POST"),
        "{text}"
    );
    let allowed: Vec<&str> = body["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for m in &allowed {
        assert!(allow.contains(m), "Allow: {allow} vs body {allowed:?}");
    }

    // A read-only path with a path parameter: only GET (and HEAD).
    let resp = client
        .post(format!("{base}/api/commands/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["allowed"],
        serde_json::json!(["GET", "HEAD"]),
        "{body}"
    );
    gw.stop().await;
}
