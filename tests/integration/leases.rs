//! Leases live on a ref of their own (`refs/gitbacked/leases/<branch>`), and leader election with
//! the kube-lease-manager crate works across two processes' stores on one remote: it relies on
//! server-side apply conflicts and strategic merge patch renewals.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube_lease_manager::LeaseManagerBuilder;

use crate::support::{Remote, git, open, status_of, within};

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
        // Every renewal went to the lease ref; the branch people read has none of them.
        let leases = remote.log_of(&gitbacked::lease_ref("main"));
        assert!(
            leases.iter().any(|s| s.starts_with("apply coordination.k8s.io/v1 Lease default/leader")),
            "{leases:?}"
        );
        assert!(!remote.log().iter().any(|s| s.contains("Lease")), "{:?}", remote.log());
        drop(follower.0);
        let _ = tokio::time::timeout(Duration::from_secs(20), follower.1).await;
        one.close().await.unwrap();
        two.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn leases_live_on_their_own_ref() {
    within(60, async {
        let remote = Remote::new();
        // A Lease a person commits to the branch is not served: Leases are read from their ref.
        let stray = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: stray\n  namespace: default\n";
        remote.commit(&[("default/leases.coordination.k8s.io/stray.yaml", Some(stray))], "a stray lease");
        let (one, two) = (open(&remote).await, open(&remote).await);
        let leases: Api<Lease> = Api::namespaced(one.client(), "default");
        assert_eq!(status_of(leases.get("stray").await).code, 404);

        let mut watch = Api::<Lease>::namespaced(two.client(), "default")
            .watch(&WatchParams::default(), "0")
            .await
            .unwrap()
            .boxed();
        let lease = Lease {
            metadata: ObjectMeta { name: Some("held".into()), ..Default::default() },
            spec: Some(LeaseSpec { holder_identity: Some("a".into()), ..Default::default() }),
        };
        let created = leases.create(&PostParams::default(), &lease).await.unwrap();
        let branch_commits = remote.commit_count();
        for holder in ["b", "c", "d"] {
            let patch = serde_json::json!({"spec": {"holderIdentity": holder}});
            leases.patch("held", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
        }
        // The writes are on the lease ref, in the layout of the branch, and the branch did not move.
        let reference = gitbacked::lease_ref("main");
        let file = git(&remote.path(), &["show", &format!("{reference}:default/leases.coordination.k8s.io/held.yaml")]);
        assert!(file.contains("holderIdentity: d"), "{file}");
        assert_eq!(remote.log_of(&reference).len(), 4, "{:?}", remote.log_of(&reference));
        assert_eq!(remote.commit_count(), branch_commits);

        // The other process sees every change through its own lease store and watch.
        let mut holders = Vec::new();
        while holders.last().map(String::as_str) != Some("d") {
            match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
                Ok(Some(Ok(WatchEvent::Added(l) | WatchEvent::Modified(l)))) => {
                    holders.push(l.spec.unwrap().holder_identity.unwrap());
                }
                other => panic!("unexpected watch item: {other:?}"),
            }
        }
        assert_eq!(holders, ["a", "b", "c", "d"]);
        let seen = Api::<Lease>::namespaced(two.client(), "default").get("held").await.unwrap();
        assert_eq!(seen.metadata.resource_version, leases.get("held").await.unwrap().metadata.resource_version);
        assert!(remote.log_of("main").iter().all(|c| !c.contains("Lease")), "Leases stay off the branch");
        assert!(!remote.log_of(&gitbacked::lease_ref("main")).is_empty(), "Leases are on their ref");

        // A stale resourceVersion still conflicts, across processes.
        let mut stale = created.clone();
        stale.spec.as_mut().unwrap().holder_identity = Some("e".into());
        let theirs: Api<Lease> = Api::namespaced(two.client(), "default");
        assert_eq!(status_of(theirs.replace("held", &PostParams::default(), &stale).await).code, 409);

        // Deleting removes the file from the lease ref only.
        leases.delete("held", &DeleteParams::default()).await.unwrap();
        let tree = git(&remote.path(), &["ls-tree", "-r", "--name-only", &reference]);
        assert!(!tree.contains("held.yaml"), "{tree}");
        assert!(remote.files().iter().any(|f| f.ends_with("stray.yaml")));
        one.close().await.unwrap();
        two.close().await.unwrap();
    })
    .await;
}
