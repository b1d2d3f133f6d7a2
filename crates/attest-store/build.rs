//! `sqlx::migrate!` embeds the migration files at compile time, but cargo only rebuilds when a
//! tracked file changes: a *new* migration file would be left out of the binary until something
//! else changed. Tracking the directories fixes that.

fn main() {
    println!("cargo:rerun-if-changed=migrations/sqlite");
    println!("cargo:rerun-if-changed=migrations/postgres");
}
