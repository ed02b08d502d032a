//! `Application` in-process: build, serve, stop on the given future; the
//! secret key kept beside the database; start-up errors naming the setting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chat_server::{Application, SettingError, Settings};
use secrecy::SecretString;

#[tokio::test]
async fn it_serves_until_the_future_completes_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(Settings::for_tests(dir.path()))
        .await
        .unwrap();
    assert_ne!(app.port(), 0);
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    for path in ["/healthz", "/readyz"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    common::login(&base, "admin", "admin-password")
        .await
        .expect("for_tests sets the admin password");
    assert_eq!(
        common::login(&base, "admin", "wrong-password").await.err(),
        Some(401)
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("stops within its grace period")
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn the_secret_key_is_generated_once_and_kept_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    drop(
        Application::build(Settings::for_tests(dir.path()))
            .await
            .unwrap(),
    );
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read it: {mode:o}");
    }
    drop(
        Application::build(Settings::for_tests(dir.path()))
            .await
            .unwrap(),
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key);

    // With CHAT_SECRET_KEY set, no file is written.
    let other = tempfile::tempdir().unwrap();
    let mut settings = Settings::for_tests(other.path());
    settings.secret_key = Some(SecretString::from("k".repeat(40)));
    drop(Application::build(settings).await.unwrap());
    assert!(!other.path().join("secret.key").exists());

    // A damaged key file is refused, not silently replaced.
    std::fs::write(&path, "short\n").unwrap();
    let err = Application::build(Settings::for_tests(dir.path()))
        .await
        .err()
        .expect("a short key is refused");
    let err = err.downcast_ref::<SettingError>().expect("a setting error");
    assert_eq!(err.setting, "CHAT_SECRET_KEY");
}

#[tokio::test]
async fn start_up_failures_name_their_setting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();

    let mut settings = Settings::for_tests(dir.path());
    settings.database_url = format!("sqlite://{}/file/hihichat.db", dir.path().display());
    let err = Application::build(settings).await.err().unwrap();
    let err = err.downcast_ref::<SettingError>().unwrap();
    assert_eq!(err.setting, "CHAT_DATABASE_URL / --database");
    assert!(err.message.ends_with("is not a directory"), "{err}");

    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = Settings::for_tests(dir.path());
    settings.listen = holder.local_addr().unwrap();
    let err = Application::build(settings).await.err().unwrap();
    let err = err.downcast_ref::<SettingError>().unwrap();
    assert_eq!(err.setting, "CHAT_LISTEN / --listen");
    assert!(err.message.starts_with("cannot listen on"), "{err}");
}
