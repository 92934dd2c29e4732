//! Commit signing through git's own configuration: an SSH signing key named in the mirror's config.

use std::process::Command;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::support::{Remote, git, open_with, options, within};

#[tokio::test]
async fn commits_are_signed_as_git_is_configured() {
    within(60, async {
        let remote = Remote::new();
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("signing");
        let made = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap();
        assert!(made.success());
        // The mirror is the cache directory: its config says how to sign.
        let mirror = keys.path().join("mirror.git");
        git(keys.path(), &["init", "--quiet", "--bare", mirror.to_str().unwrap()]);
        git(&mirror, &["config", "gpg.format", "ssh"]);
        git(&mirror, &["config", "user.signingkey", key.to_str().unwrap()]);
        let store =
            open_with(&remote, gitbacked::Options { cache_dir: Some(mirror), sign_commits: true, ..options() }).await;

        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "signed"}, "data": {"k": "v"}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
        assert_eq!(remote.log()[0], "create v1 ConfigMap default/signed");

        // The remote's newest commit verifies against the key.
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let allowed = keys.path().join("allowed_signers");
        std::fs::write(&allowed, format!("gitbacked@localhost {public}")).unwrap();
        let allowed_config = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
        let verified = Command::new("git")
            .arg("-C")
            .arg(remote.path())
            .args(["-c", &allowed_config, "verify-commit", "main"])
            .output()
            .unwrap();
        assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
        store.close().await.unwrap();
    })
    .await;
}
