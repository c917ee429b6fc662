//! Documents over https: a local TLS server whose certificate a CA made by the test signs,
//! trusted through TLS_EXTRA_CA_FILE; without it, the import is refused and says why.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::spawn_app_with;

const DOCUMENT: &str = r#"{"openapi":"3.0.3","info":{"title":"Over TLS","version":"1"},
  "servers":[{"url":"https://127.0.0.1:9"}],
  "paths":{"/ping":{"get":{"operationId":"ping","responses":{"200":{"description":"pong"}}}}}}"#;

/// A throwaway CA (PEM) and a TLS server on 127.0.0.1 with a certificate it signed for
/// `127.0.0.1` and `localhost`, answering every request with [`DOCUMENT`].
async fn tls_document_server() -> (String, u16) {
    let (ca_pem, acceptor) = crate::helpers::throwaway_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake (the client distrusts us) simply ends here.
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{DOCUMENT}",
                    DOCUMENT.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca_pem, port)
}

const ANALYZE: &str = "mutation($p: ID!, $u: String!) { analyzeOpenApi(input: {projectId: $p, url: $u}) {
    spec { title sourceUrl endpoints { operationId } } } }";

#[tokio::test]
async fn an_https_document_imports_when_its_ca_is_trusted_and_is_refused_with_the_reason_when_not() {
    let (ca_pem, port) = tls_document_server().await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("private-ca.pem");
    std::fs::write(&bundle, &ca_pem).unwrap();
    let url = format!("https://127.0.0.1:{port}/openapi.json");

    let trusting = spawn_app_with(&[("TLS_EXTRA_CA_FILE", bundle.to_str().unwrap())]).await;
    let project = trusting.create_project("TLS").await;
    let imported = trusting.graphql(ANALYZE, json!({ "p": project, "u": url })).await;
    let spec = &imported.data()["analyzeOpenApi"]["spec"];
    assert_eq!(spec["title"], "Over TLS");
    assert_eq!(spec["sourceUrl"], url.as_str());
    assert_eq!(spec["endpoints"][0]["operationId"], "ping");

    let distrusting = spawn_app_with(&[]).await;
    let project = distrusting.create_project("TLS").await;
    let refused = distrusting.graphql(ANALYZE, json!({ "p": project, "u": url })).await;
    assert_eq!(refused.error_code(), "BAD_USER_INPUT", "{}", refused.body);
    let message = refused.error_message();
    assert!(
        message.contains("TLS certificate is not trusted")
            && message.contains("CA this server does not trust"),
        "{message}"
    );
    let specs = distrusting.graphql("{ openApiSpecs { id } }", json!({})).await;
    assert_eq!(specs.data()["openApiSpecs"], json!([]), "nothing written on refusal");
}
