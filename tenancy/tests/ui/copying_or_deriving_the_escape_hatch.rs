//! The one `Unscoped` cannot be cloned, nor obtained from the pool.
#[path = "../support/entities.rs"]
mod entities;

fn escape(db: &tenancy::Db, hatch: &tenancy::Unscoped) {
    let _copy: tenancy::Unscoped = hatch.clone();
    let _from_pool = db.unscoped();
}

fn main() {}
