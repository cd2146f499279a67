//! Class D, clever: build the context issuer or the escape hatch by hand.
use tenancy::{CtxIssuer, Db, Unscoped};

fn issuer() -> CtxIssuer {
    CtxIssuer { _private: () }
}

fn hatch(db: Db) -> Unscoped {
    Unscoped { db }
}

fn main() {}
