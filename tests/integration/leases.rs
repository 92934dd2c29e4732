//! Leader election with the kube-lease-manager crate across two processes' stores on one remote:
//! it relies on server-side apply conflicts and strategic merge patch renewals.

use std::time::{Duration, Instant};

use kube_lease_manager::LeaseManagerBuilder;

use crate::support::{Remote, open, within};

#[tokio::test]
async fn one_leader_at_a_time_and_a_handover() {
    within(90, async {
        let remote = Remote::new();
        let (one, two) = (open(&remote).await, open(&remote).await);
        let manager = |client: kube::Client, identity: &str| {
            LeaseManagerBuilder::new(client, "leader")
                .with_namespace("default")
                .with_identity(identity)
                .with_duration(4)
                .with_grace(1)
                .build()
        };
        let (a, a_task) = manager(one.client(), "a").await.unwrap().watch().await;
        let (b, b_task) = manager(two.client(), "b").await.unwrap().watch().await;

        let deadline = Instant::now() + Duration::from_secs(30);
        let first = loop {
            let (is_a, is_b) = (*a.borrow(), *b.borrow());
            assert!(!(is_a && is_b), "two leaders at once");
            match (is_a, is_b) {
                (true, false) => break "a",
                (false, true) => break "b",
                _ => assert!(Instant::now() < deadline, "nobody became leader"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The leader steps down: closing its channel makes its manager release the lease.
        let (leader, follower) = if first == "a" { ((a, a_task), (b, b_task)) } else { ((b, b_task), (a, a_task)) };
        drop(leader.0);
        let released = tokio::time::timeout(Duration::from_secs(20), leader.1).await;
        assert!(matches!(released, Ok(Ok(Ok(_)))), "the leader did not release: {released:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !*follower.0.borrow() {
            assert!(Instant::now() < deadline, "the lease was not handed over");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            remote.log().iter().any(|s| s.starts_with("apply coordination.k8s.io/v1 Lease default/leader")),
            "{:?}",
            remote.log()
        );
        drop(follower.0);
        let _ = tokio::time::timeout(Duration::from_secs(20), follower.1).await;
        one.close().await.unwrap();
        two.close().await.unwrap();
    })
    .await;
}
