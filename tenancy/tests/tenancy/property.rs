//! Random multi-tenant workloads against an in-memory model: every scoped read returns
//! exactly the handle's tenant's matching rows, and every write changes only them —
//! including writes that name another tenant's rows (by id, as a reference, as the row's
//! tenant, as an upsert's conflicting key, in a batch, through a subquery). Failing
//! seeds are kept in `property.proptest-regressions` next to this file and replayed
//! first.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sea_orm::{ActiveValue, Set};
use tenancy::testing::Backend;
use tenancy::{ColumnExt, TenantDb, TenantHandle};
use uuid::Uuid;

use crate::support::entities::*;
use crate::support::{new_tenant, schema_db};

const TENANTS: usize = 3;
const NAMES: [&str; 3] = ["ann", "bob", "cy"];

#[derive(Debug, Clone)]
enum Op {
    Insert {
        tenant: usize,
        name: usize,
        score: i32,
        account: Option<usize>,
    },
    Read {
        tenant: usize,
        name: usize,
    },
    ReadJoined {
        tenant: usize,
    },
    UpdateMany {
        tenant: usize,
        name: usize,
        score: i32,
    },
    DeleteMany {
        tenant: usize,
        below: i32,
    },
    /// Update by primary key a row picked from all rows, of any tenant.
    UpdateById {
        tenant: usize,
        pick: usize,
        score: i32,
    },
    /// Delete by id a row picked from all rows, of any tenant.
    DeleteById {
        tenant: usize,
        pick: usize,
    },
    Transaction {
        tenant: usize,
        score: i32,
        commit: bool,
    },
    /// Insert a person whose `account_id` is another tenant's account.
    InsertForeignReference {
        tenant: usize,
        other: usize,
        account: usize,
    },
    /// Point one of our people (picked from all rows) at another tenant's account.
    UpdateForeignReference {
        tenant: usize,
        pick: usize,
        other: usize,
        account: usize,
    },
    /// Insert a row (alone, or in a batch with good rows) that names another tenant.
    InsertNamingOther {
        tenant: usize,
        other: usize,
        batch: bool,
    },
    /// Upsert with the id of a row picked from all rows, of any tenant.
    Upsert {
        tenant: usize,
        pick: usize,
        name: usize,
    },
    /// Filter by a subquery built on another tenant's handle.
    SubqueryOfOther {
        tenant: usize,
        other: usize,
    },
    /// Try to move rows to another tenant through an update.
    UpdateTenantColumn {
        tenant: usize,
        other: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..TENANTS;
    let n = 0..NAMES.len();
    prop_oneof![
        3 => (t.clone(), n.clone(), 0..5, proptest::option::of(0..2usize))
            .prop_map(|(tenant, name, score, account)| Op::Insert { tenant, name, score, account }),
        2 => (t.clone(), n.clone()).prop_map(|(tenant, name)| Op::Read { tenant, name }),
        1 => t.clone().prop_map(|tenant| Op::ReadJoined { tenant }),
        1 => (t.clone(), n, 0..5).prop_map(|(tenant, name, score)| Op::UpdateMany { tenant, name, score }),
        1 => (t.clone(), 0..5).prop_map(|(tenant, below)| Op::DeleteMany { tenant, below }),
        2 => (t.clone(), any::<usize>(), 0..5).prop_map(|(tenant, pick, score)| Op::UpdateById { tenant, pick, score }),
        1 => (t.clone(), any::<usize>()).prop_map(|(tenant, pick)| Op::DeleteById { tenant, pick }),
        1 => (t.clone(), 0..5, any::<bool>()).prop_map(|(tenant, score, commit)| Op::Transaction { tenant, score, commit }),
        1 => (t.clone(), t.clone(), 0..2usize).prop_map(|(tenant, other, account)| Op::InsertForeignReference { tenant, other, account }),
        1 => (t.clone(), any::<usize>(), t.clone(), 0..2usize).prop_map(|(tenant, pick, other, account)| Op::UpdateForeignReference { tenant, pick, other, account }),
        1 => (t.clone(), t.clone(), any::<bool>()).prop_map(|(tenant, other, batch)| Op::InsertNamingOther { tenant, other, batch }),
        1 => (t.clone(), any::<usize>(), 0..NAMES.len()).prop_map(|(tenant, pick, name)| Op::Upsert { tenant, pick, name }),
        1 => (t.clone(), t.clone()).prop_map(|(tenant, other)| Op::SubqueryOfOther { tenant, other }),
        1 => (t.clone(), t).prop_map(|(tenant, other)| Op::UpdateTenantColumn { tenant, other }),
    ]
}

/// The model: every person row by `(tenant_id, id)` (the primary key: two tenants may
/// hold the same id).
type Model = BTreeMap<(Uuid, Uuid), person::Model>;

fn key(p: &person::Model) -> (Uuid, Uuid) {
    (p.tenant_id, p.id)
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn of_tenant<'m>(model: &'m Model, db: &TenantDb) -> impl Iterator<Item = &'m person::Model> {
    let t = db.tenant().as_uuid();
    model.values().filter(move |p| p.tenant_id == t)
}

async fn run(backend: &Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let test = schema_db(backend).await;
    let mut tenants = Vec::new();
    let mut accounts = Vec::new();
    for i in 0..TENANTS {
        let db = new_tenant(&test, &format!("t{i}")).await;
        let mut own = Vec::new();
        for name in ["x", "y"] {
            let acc = db
                .insert(account::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    name: Set(name.into()),
                    currency: Set(None),
                    ..Default::default()
                })
                .exec()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            own.push(acc.id);
        }
        accounts.push(own);
        tenants.push(db);
    }
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Insert {
                tenant,
                name,
                score,
                account,
            } => {
                let db = &tenants[tenant];
                let row = db
                    .insert(person::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        account_id: Set(account.map(|a| accounts[tenant][a])),
                        name: Set(NAMES[name].into()),
                        score: Set(score),
                        ..Default::default()
                    })
                    .exec()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(row.tenant_id, db.tenant().as_uuid());
                model.insert(key(&row), row);
            }
            Op::Read { tenant, name } => {
                let db = &tenants[tenant];
                let mut got = db
                    .find::<person::Entity>()
                    .filter(person::Column::Name.eq(NAMES[name]))
                    .all()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                got.sort_by_key(|p| p.id);
                let want: Vec<_> = of_tenant(&model, db)
                    .filter(|p| p.name == NAMES[name])
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::ReadJoined { tenant } => {
                let db = &tenants[tenant];
                let got = db
                    .find::<person::Entity>()
                    .also::<account::Entity>()
                    .all()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(got.len(), of_tenant(&model, db).count());
                for (person, account) in got {
                    prop_assert_eq!(person.tenant_id, db.tenant().as_uuid());
                    prop_assert_eq!(
                        account
                            .as_ref()
                            .map(|a| a.tenant_id)
                            .unwrap_or(person.tenant_id),
                        person.tenant_id
                    );
                    prop_assert_eq!(account.map(|a| a.id), person.account_id);
                }
            }
            Op::UpdateMany {
                tenant,
                name,
                score,
            } => {
                let db = &tenants[tenant];
                let changed = db
                    .update_many::<person::Entity>()
                    .set(person::Column::Score, score)
                    .filter(person::Column::Name.eq(NAMES[name]))
                    .exec()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let t = db.tenant().as_uuid();
                let mut expected = 0;
                for p in model
                    .values_mut()
                    .filter(|p| p.tenant_id == t && p.name == NAMES[name])
                {
                    p.score = score;
                    expected += 1;
                }
                prop_assert_eq!(changed, expected);
            }
            Op::DeleteMany { tenant, below } => {
                let db = &tenants[tenant];
                let deleted = db
                    .delete_many::<person::Entity>()
                    .filter(person::Column::Score.lt(below))
                    .exec()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let t = db.tenant().as_uuid();
                let before = model.len();
                model.retain(|_, p| !(p.tenant_id == t && p.score < below));
                prop_assert_eq!(deleted as usize, before - model.len());
            }
            Op::UpdateById {
                tenant,
                pick,
                score,
            } => {
                let Some(target) = model.values().nth(pick % model.len().max(1)).cloned() else {
                    continue;
                };
                let db = &tenants[tenant];
                let result = db
                    .update(person::ActiveModel {
                        id: ActiveValue::Unchanged(target.id),
                        score: Set(score),
                        ..Default::default()
                    })
                    .exec()
                    .await;
                if model.contains_key(&(db.tenant().as_uuid(), target.id)) {
                    let row = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(row.score, score);
                    prop_assert_eq!(row.tenant_id, db.tenant().as_uuid());
                    model.insert(key(&row), row);
                } else {
                    prop_assert!(
                        matches!(result, Err(tenancy::Error::NotFound { .. })),
                        "{:?}",
                        result
                    );
                }
            }
            Op::DeleteById { tenant, pick } => {
                let Some(target) = model.values().nth(pick % model.len().max(1)).cloned() else {
                    continue;
                };
                let db = &tenants[tenant];
                let deleted = db
                    .delete_many::<person::Entity>()
                    .filter(person::Column::Id.eq(target.id))
                    .exec()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let same_id_here = model.contains_key(&(db.tenant().as_uuid(), target.id));
                if target.tenant_id == db.tenant().as_uuid() {
                    prop_assert_eq!(deleted, 1);
                    model.remove(&key(&target));
                } else if same_id_here {
                    // An upsert gave this tenant a row with the same id: that one goes.
                    prop_assert_eq!(deleted, 1);
                    model.remove(&(db.tenant().as_uuid(), target.id));
                } else {
                    prop_assert_eq!(deleted, 0);
                }
            }
            Op::Transaction {
                tenant,
                score,
                commit,
            } => {
                let db = &tenants[tenant];
                let txn = db
                    .begin()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                txn.update_many::<person::Entity>()
                    .set(person::Column::Score, score)
                    .exec()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if commit {
                    txn.commit()
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let t = db.tenant().as_uuid();
                    model
                        .values_mut()
                        .filter(|p| p.tenant_id == t)
                        .for_each(|p| p.score = score);
                } else {
                    txn.rollback()
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Op::InsertForeignReference {
                tenant,
                other,
                account,
            } => {
                if other == tenant {
                    continue;
                }
                let result = tenants[tenant]
                    .insert(person::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        account_id: Set(Some(accounts[other][account])),
                        name: Set("foreign".into()),
                        score: Set(0),
                        ..Default::default()
                    })
                    .exec()
                    .await;
                prop_assert!(
                    matches!(result, Err(tenancy::Error::ForeignKeyViolation(_))),
                    "a reference to another tenant's account was stored: {:?}",
                    result
                );
            }
            Op::UpdateForeignReference {
                tenant,
                pick,
                other,
                account,
            } => {
                let db = &tenants[tenant];
                let mine: Vec<_> = of_tenant(&model, db).cloned().collect();
                let (Some(target), true) = (mine.get(pick % mine.len().max(1)), other != tenant)
                else {
                    continue;
                };
                let result = db
                    .update(person::ActiveModel {
                        id: ActiveValue::Unchanged(target.id),
                        account_id: Set(Some(accounts[other][account])),
                        ..Default::default()
                    })
                    .exec()
                    .await;
                prop_assert!(
                    matches!(result, Err(tenancy::Error::ForeignKeyViolation(_))),
                    "a row now references another tenant's account: {:?}",
                    result
                );
            }
            Op::InsertNamingOther {
                tenant,
                other,
                batch,
            } => {
                if other == tenant {
                    continue;
                }
                let db = &tenants[tenant];
                let foreign = person::ActiveModel {
                    tenant_id: Set(tenants[other].tenant().as_uuid()),
                    id: Set(Uuid::now_v7()),
                    name: Set("planted".into()),
                    score: Set(0),
                    ..Default::default()
                };
                let refused = if batch {
                    let good = person::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        name: Set("good".into()),
                        score: Set(0),
                        ..Default::default()
                    };
                    db.insert_many([good, foreign]).exec().await.err()
                } else {
                    db.insert(foreign).exec().await.err()
                };
                prop_assert!(
                    matches!(refused, Some(tenancy::Error::TenantMismatch { .. })),
                    "{:?}",
                    refused
                );
            }
            Op::Upsert { tenant, pick, name } => {
                let db = &tenants[tenant];
                let id = model
                    .values()
                    .nth(pick % model.len().max(1))
                    .map_or_else(Uuid::now_v7, |p| p.id);
                let row = db
                    .insert(person::ActiveModel {
                        id: Set(id),
                        name: Set(NAMES[name].into()),
                        score: Set(0),
                        ..Default::default()
                    })
                    .on_conflict_update([person::Column::Id], [person::Column::Name])
                    .exec()
                    .await
                    .map_err(fail)?;
                prop_assert_eq!(row.tenant_id, db.tenant().as_uuid());
                let entry = model.entry(key(&row)).or_insert_with(|| row.clone());
                entry.name = NAMES[name].into();
                prop_assert_eq!(&row, &*entry);
            }
            Op::SubqueryOfOther { tenant, other } => {
                if other == tenant {
                    continue;
                }
                let theirs = tenants[other]
                    .find::<account::Entity>()
                    .subquery(account::Column::Id);
                let result = tenants[tenant]
                    .find::<person::Entity>()
                    .filter_in(person::Column::AccountId, theirs)
                    .all()
                    .await;
                prop_assert!(
                    matches!(result, Err(tenancy::Error::TenantMismatch { .. })),
                    "{:?}",
                    result
                );
            }
            Op::UpdateTenantColumn { tenant, other } => {
                let result = tenants[tenant]
                    .update_many::<person::Entity>()
                    .set(person::Column::TenantId, tenants[other].tenant().as_uuid())
                    .exec()
                    .await;
                prop_assert!(
                    matches!(result, Err(tenancy::Error::TenantColumnImmutable { .. })),
                    "{:?}",
                    result
                );
            }
        }
        // After every step, the whole table (read through the escape hatch) is the model.
        let actual: Model = test
            .connected
            .unscoped
            .find::<person::Entity>("property oracle")
            .all()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .map(|p| (key(&p), p))
            .collect();
        prop_assert_eq!(&actual, &model);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_scoped_reads_and_writes_only_ever_see_and_change_their_own_tenant(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for backend in tenancy::testing::backends() {
            runtime.block_on(run(&backend, ops.clone()))?;
        }
    }
}
