//! One terminal state, always: cancels racing a run's own end (real k6, a short run hammered
//! with cancels from before it starts to after it ends).

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::spawn_app,
    subscriptions::support::{Protocol, connect},
    target_api::project_with_target,
};

const TERMINAL: [&str; 3] = ["COMPLETED", "FAILED", "CANCELLED"];

#[tokio::test]
async fn cancels_racing_a_runs_end_leave_one_terminal_status_and_one_terminal_event() {
    let app = spawn_app().await;
    let (_, endpoints) = project_with_target(&app, "Race").await;
    let endpoint = endpoints["getItem"].clone();
    // The first cancels land while k6 starts, the middle ones while it runs, the last ones as
    // it ends and after.
    for (round, hammer_after_ms) in
        [0u64, 400, 900, 1100, 1200, 1300, 1400, 1500, 1700].into_iter().enumerate()
    {
        let id = app
            .launch(json!({ "title": format!("race {round}"), "scenarios": [{ "name": "s", "endpointId": endpoint,
                "executor": "CONSTANT_VUS", "thinkTime": 0.05, "stages": [{"duration": "1s", "target": 2}] }] }))
            .await;
        let mut socket = connect(&app.address, Protocol::Modern).await;
        socket
            .subscribe(
                "status",
                "subscription($run: ID) { testStatusChanged(testHistoryId: $run) { status } }",
                json!({ "run": id }),
            )
            .await;

        tokio::time::sleep(Duration::from_millis(hammer_after_ms)).await;
        // Four cancellers at once, each cancelling until the run is over.
        let cancellers = (0..4).map(|_| {
            let (app, id) = (&app, id.clone());
            async move {
                let mut answers = Vec::new();
                for _ in 0..200 {
                    let answer = app
                        .graphql(
                            "mutation($id: ID!) { cancelLoadTest(id: $id) { status } }",
                            json!({ "id": id }),
                        )
                        .await;
                    let over = answer.body.get("errors").is_some()
                        || TERMINAL.contains(
                            &answer.body["data"]["cancelLoadTest"]["status"].as_str().unwrap_or(""),
                        );
                    answers.push(answer.body);
                    if over {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                answers
            }
        });
        let answers: Vec<Value> =
            futures_util::future::join_all(cancellers).await.into_iter().flatten().collect();

        let run =
            app.graphql("query($id: ID!) { testHistory(id: $id) { status } }", json!({ "id": id })).await;
        let status = run.data()["testHistory"]["status"].as_str().unwrap().to_owned();
        assert!(TERMINAL.contains(&status.as_str()), "round {round}: the run is over: {status}");
        for answer in &answers {
            match answer.get("errors") {
                Some(errors) => {
                    assert_eq!(errors[0]["extensions"]["code"], "CONFLICT", "round {round}: {answer}")
                }
                None => {
                    let answered = answer["data"]["cancelLoadTest"]["status"].as_str().unwrap();
                    assert!(
                        answered == status || !TERMINAL.contains(&answered),
                        "round {round}: a cancel answered {answered}, the run is {status}"
                    );
                }
            }
        }

        // Exactly one terminal event, and it says what the record says.
        let mut terminal_events = Vec::new();
        while let Ok(payload) =
            tokio::time::timeout(Duration::from_secs(3), socket.next_payload("status")).await
        {
            let event = payload["data"]["testStatusChanged"]["status"].as_str().unwrap_or("").to_owned();
            if TERMINAL.contains(&event.as_str()) {
                terminal_events.push(event);
            }
        }
        assert_eq!(terminal_events, std::slice::from_ref(&status), "round {round}: terminal events");
        eprintln!(
            "round {round} (cancels from {hammer_after_ms} ms): {status}, {} cancel answers",
            answers.len()
        );
    }
}
