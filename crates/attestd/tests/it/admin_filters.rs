//! Admin text filters with a NUL character are the client's mistake: 400 `malformed_request`
//! naming the parameter, on both stores (PostgreSQL used to fail the query, which answered 503
//! `unavailable` and logged a false database alarm; SQLite ran it).

use crate::common;

use common::{ADMIN_TOKEN, APP, Db, Server, assert_error};
use reqwest::{Method, StatusCode};

on_both_stores!(a_nul_in_an_admin_filter_is_a_malformed_request);

async fn a_nul_in_an_admin_filter_is_a_malformed_request(db: &Db) {
    let server = Server::start(db).await;
    server.attest(&common::device()).await;
    let cases = [
        ("/admin/v1/decisions?appId=%00", "appId"),
        (
            &format!("/admin/v1/decisions?appId={APP}%00") as &str,
            "appId",
        ),
        ("/admin/v1/decisions?deviceId=device%00", "deviceId"),
        ("/admin/v1/decisions?outcome=deny%00", "outcome"),
        ("/admin/v1/devices?userId=%00", "userId"),
        ("/admin/v1/devices?deviceId=%00x", "deviceId"),
        ("/admin/v1/devices?appId=%00", "appId"),
        ("/admin/v1/webhooks/deliveries?event=device.new%00", "event"),
        ("/admin/v1/apps/%00/summary", "appId"),
    ];
    for (path, field) in cases {
        let answer = server.admin(Method::GET, path, Some(ADMIN_TOKEN)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_request");
        assert_eq!(answer.1["details"]["field"], field, "{path}: {}", answer.1);
    }
    // The same filters without the NUL work, and the database was never in trouble.
    for path in [
        format!("/admin/v1/decisions?appId={APP}"),
        "/admin/v1/devices?userId=nobody".to_owned(),
        "/admin/v1/webhooks/deliveries?event=device.new".to_owned(),
    ] {
        server.admin_get(&path).await;
    }
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
}
