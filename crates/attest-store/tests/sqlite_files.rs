//! SQLite database files: every URL form a user writes creates the file, files are private,
//! unusable files are named with the reason, and the exclusive lock keeps other processes (and
//! the `-shm` mapping) out.
//!
//! Run: `cargo test -p attest-store --test sqlite_files`

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use attest_store::{AnyStore, SigningKey, SqliteLocking, Store, StoreError, StoreOptions};
use time::OffsetDateTime;

/// The environment variable that makes [`a_second_process_cannot_open_an_exclusive_database`]
/// act as the second process.
const SECOND_PROCESS: &str = "ATTEST_STORE_TEST_SECOND_PROCESS_URL";
/// Set (to anything): the second process opens with shared locking.
const SECOND_PROCESS_SHARED: &str = "ATTEST_STORE_TEST_SECOND_PROCESS_SHARED";

fn key(kid: &str) -> SigningKey {
    SigningKey {
        kid: kid.into(),
        algorithm: "ES256".into(),
        private_pkcs8: vec![0x30, 1, 2, 3],
        created_at: OffsetDateTime::UNIX_EPOCH,
        retired_at: None,
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `path` relative to the working directory, so relative URL forms can be tested without
/// changing the directory of the whole test process.
fn relative(path: &Path) -> String {
    let cwd = std::env::current_dir().expect("working directory");
    let ups = cwd
        .components()
        .filter(|component| matches!(component, Component::Normal(_)))
        .count();
    let mut relative = "../".repeat(ups);
    relative.push_str(path.to_str().expect("UTF-8 path").trim_start_matches('/'));
    relative
}

#[tokio::test]
async fn every_sqlite_url_form_creates_a_missing_file_readable_by_its_owner_only() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let file = |name: &str| directory.path().join(name);
    let forms: Vec<(String, PathBuf)> = vec![
        (
            format!("sqlite://{}", relative(&file("a.db"))),
            file("a.db"),
        ),
        (format!("sqlite://{}", file("b.db").display()), file("b.db")),
        (format!("sqlite:{}", relative(&file("c.db"))), file("c.db")),
        (
            format!("sqlite://{}?mode=rwc", relative(&file("d.db"))),
            file("d.db"),
        ),
        (
            format!("sqlite://{}?cache=private", file("e.db").display()),
            file("e.db"),
        ),
        (format!("./{}", relative(&file("f.db"))), file("f.db")),
        (file("g.db").display().to_string(), file("g.db")),
        (
            format!("sqlite://{}", file("with space.db").display()),
            file("with space.db"),
        ),
    ];
    for (url, path) in forms {
        assert!(!path.exists());
        let store = AnyStore::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
        store.insert_signing_key(&key("k")).await.expect("write");
        assert_eq!(store.signing_keys().await.expect("read").len(), 1, "{url}");
        assert_eq!(mode(&path), 0o600, "{url}");
        // SQLite gives the -wal the database's mode, whatever the umask.
        assert_eq!(mode(&companion(&path, "-wal")), 0o600, "{url}");
        store.close().await;
        let reopened = AnyStore::connect(&url).await.expect("reopen");
        assert_eq!(reopened.signing_keys().await.expect("read").len(), 1);
        reopened.close().await;
    }
}

#[tokio::test]
async fn explicit_modes_are_obeyed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("x.db");
    for mode in ["rw", "ro"] {
        let url = format!("sqlite://{}?mode={mode}", path.display());
        let error = AnyStore::connect(&url)
            .await
            .expect_err("mode= does not create");
        assert!(
            matches!(&error, StoreError::File { path: named, reason }
                if *named == path && reason.contains("does not exist")),
            "{error}"
        );
        assert!(!path.exists(), "mode={mode} created the file");
    }
    let store = AnyStore::connect(&path.display().to_string())
        .await
        .expect("create");
    store.insert_signing_key(&key("k")).await.expect("write");
    store.close().await;
    let read_only = AnyStore::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("an existing database opens read-only");
    assert_eq!(read_only.signing_keys().await.expect("read").len(), 1);
    assert!(
        read_only.insert_signing_key(&key("k2")).await.is_err(),
        "mode=ro writes nothing"
    );
    read_only.close().await;
}

#[tokio::test]
async fn unusable_files_are_named_with_the_reason() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let base = directory.path();

    let missing = base.join("no/such/dir/attestd.db");
    let error = AnyStore::connect(&missing.display().to_string())
        .await
        .expect_err("missing directory");
    assert!(
        error.to_string().contains(&missing.display().to_string())
            && error.to_string().contains("directory")
            && error.to_string().contains("does not exist"),
        "{error}"
    );

    let text = base.join("notes.db");
    std::fs::write(&text, "these are my notes, not a database").expect("write");
    chmod(&text, 0o600);
    let error = AnyStore::connect(&text.display().to_string())
        .await
        .expect_err("not a database");
    assert!(
        matches!(&error, StoreError::File { path, reason }
            if *path == text && reason.contains("not a SQLite database")),
        "{error}"
    );

    let directory_path = base.join("a-directory.db");
    std::fs::create_dir(&directory_path).expect("mkdir");
    let error = AnyStore::connect(&directory_path.display().to_string())
        .await
        .expect_err("a directory");
    assert!(error.to_string().contains("not a regular file"), "{error}");

    // A file the process may not write: root ignores permission bits, but not the immutable
    // attribute (which needs CAP_LINUX_IMMUTABLE to set).
    let locked = base.join("locked.db");
    let store = AnyStore::connect(&locked.display().to_string())
        .await
        .expect("create");
    store.close().await;
    let as_root = std::fs::metadata(&locked).expect("metadata").uid() == 0;
    if as_root {
        chattr("+i", &locked);
    } else {
        chmod(&locked, 0o400);
    }
    let error = AnyStore::connect(&locked.display().to_string()).await;
    if as_root {
        chattr("-i", &locked);
    }
    let error = error.expect_err("an unwritable file");
    assert!(
        matches!(&error, StoreError::File { path, reason }
            if *path == locked && reason.contains("not writable")),
        "{error}"
    );
    if as_root {
        assert!(error.to_string().contains("immutable"), "{error}");
    }
}

#[tokio::test]
async fn database_files_other_users_may_read_are_refused_unless_allowed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("attestd.db");
    let url = path.display().to_string();
    let store = AnyStore::connect(&url).await.expect("create");
    store.insert_signing_key(&key("k")).await.expect("write");
    store.close().await;

    for (file, bits) in [(path.clone(), 0o644), (path.clone(), 0o660)] {
        chmod(&file, bits);
        let error = AnyStore::connect(&url).await.expect_err("readable");
        assert!(
            matches!(&error, StoreError::ReadableFile { path: named, mode } if *named == file && *mode == bits),
            "{error}"
        );
        assert!(
            error.to_string().contains(&format!("{bits:04o}")),
            "{error}"
        );
    }
    // A -wal left readable is refused too.
    chmod(&path, 0o600);
    let wal = companion(&path, "-wal");
    std::fs::write(&wal, b"").expect("an empty -wal");
    chmod(&wal, 0o604);
    let error = AnyStore::connect(&url).await.expect_err("readable -wal");
    assert!(
        matches!(&error, StoreError::ReadableFile { path: named, .. } if *named == wal),
        "{error}"
    );
    std::fs::remove_file(&wal).expect("rm -wal");

    // Allowed explicitly: opened, and reported for the caller's warning. SQLite gives the new
    // -wal the database file's mode.
    chmod(&path, 0o640);
    let options = StoreOptions {
        allow_readable_files: true,
        ..StoreOptions::default()
    };
    let store = AnyStore::connect_with(&url, &options)
        .await
        .expect("allowed");
    assert_eq!(store.readable_files().len(), 1);
    assert_eq!(store.readable_files()[0].path, path);
    assert_eq!(store.readable_files()[0].mode, 0o640);
    store.insert_signing_key(&key("k2")).await.expect("write");
    assert_eq!(mode(&wal), 0o640);
    store.close().await;
}

/// With exclusive locking (the default) there is no `-shm` file to map, and a second process
/// is refused with a clear error; with shared locking the second process opens the database.
#[tokio::test]
async fn a_second_process_cannot_open_an_exclusive_database() {
    if let Ok(url) = std::env::var(SECOND_PROCESS) {
        // The second process: report what opening gave.
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(200),
            sqlite_locking: if std::env::var_os(SECOND_PROCESS_SHARED).is_some() {
                SqliteLocking::Shared
            } else {
                SqliteLocking::Exclusive
            },
            ..StoreOptions::default()
        };
        match AnyStore::connect_with(&url, &options).await {
            Ok(store) => {
                let keys = store.signing_keys().await.expect("read");
                println!("SECOND-PROCESS: opened, {} keys", keys.len());
            }
            Err(error) => println!("SECOND-PROCESS: {error}"),
        }
        return;
    }
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("attestd.db");
    let url = path.display().to_string();

    let store = AnyStore::connect(&url).await.expect("open");
    store.insert_signing_key(&key("k")).await.expect("write");
    assert!(
        !companion(&path, "-shm").exists(),
        "exclusive locking maps no -shm file"
    );
    for locking in [SqliteLocking::Exclusive, SqliteLocking::Shared] {
        let answer = second_process(&url, locking);
        assert!(
            answer.contains("in use by another process") && answer.contains(&url),
            "{locking:?}: {answer}"
        );
    }
    store.close().await;

    let shared = StoreOptions {
        sqlite_locking: SqliteLocking::Shared,
        ..StoreOptions::default()
    };
    let store = AnyStore::connect_with(&url, &shared)
        .await
        .expect("open shared");
    store.insert_signing_key(&key("k2")).await.expect("write");
    assert!(
        companion(&path, "-shm").exists(),
        "shared locking maps a -shm"
    );
    assert_eq!(mode(&companion(&path, "-shm")), 0o600);
    // Another process sharing too opens the database and reads what this one wrote; one that
    // wants it exclusively is refused.
    let answer = second_process(&url, SqliteLocking::Shared);
    assert!(answer.contains("opened, 2 keys"), "{answer}");
    let answer = second_process(&url, SqliteLocking::Exclusive);
    assert!(answer.contains("in use by another process"), "{answer}");
    store.close().await;
}

/// Runs this test again in a new process with [`SECOND_PROCESS`] set; returns its report.
fn second_process(url: &str, locking: SqliteLocking) -> String {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    if locking == SqliteLocking::Shared {
        command.env(SECOND_PROCESS_SHARED, "1");
    }
    let output = command
        .args([
            "--exact",
            "a_second_process_cannot_open_an_exclusive_database",
            "--nocapture",
        ])
        .env(SECOND_PROCESS, url)
        .output()
        .expect("run the second process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("SECOND-PROCESS: "))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "no report: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

fn chattr(flag: &str, path: &Path) {
    let status = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .expect("chattr (e2fsprogs)");
    assert!(
        status.success(),
        "chattr {flag} {}: root needs CAP_LINUX_IMMUTABLE (docker run --cap-add LINUX_IMMUTABLE)",
        path.display()
    );
}
