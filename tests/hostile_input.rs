//! Hostile input, each case found by a hostile-input run against the real gateway: a real
//! broker over TCP, real HTTP, a real data dir. Every assertion is a count or a state.

mod common;

use common::*;
use serde_json::Value;

fn operator_base(gw: &TestGateway) -> String {
    format!("http://{}", gw.running().operator_addr.unwrap())
}

/// The operator token is read from `?token=` only on the SSE stream; mutations and other reads
/// need the header, so the token never has to be put in a URL that changes something.
#[tokio::test]
async fn token_query_parameter_only_opens_the_event_stream() {
    let gw = TestGateway::start_with(|c| {
        c.operator.token = "op-secret".into();
        c.operator.protect_reads = true;
    })
    .await;
    let b = operator_base(&gw);
    let http = reqwest::Client::new();

    let by_query = http
        .post(format!("{b}/api/profile?token=op-secret"))
        .body("night")
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 401, "a mutation never takes ?token=");
    let body: Value = serde_json::from_slice(&by_query.bytes().await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("/api/events"),
        "{body}"
    );
    assert_eq!(
        common::store::desired_profile(&gw),
        "",
        "the refused mutation changed nothing"
    );
    let by_header = http
        .post(format!("{b}/api/profile"))
        .bearer_auth("op-secret")
        .body("night")
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);

    let read_by_query = http
        .get(format!("{b}/api/state?token=op-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_by_query.status(),
        401,
        "protected reads need the header"
    );

    // EventSource cannot set headers: the stream alone accepts the query parameter.
    let stream = http
        .get(format!("{b}/api/events?token=op-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    drop(stream);
    let stream = http
        .get(format!("{b}/api/events?token=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
    let stream = http
        .get(format!("{b}/api/events"))
        .bearer_auth("op-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200, "the header works on the stream too");
}
