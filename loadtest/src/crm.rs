//! Accounts and activities in the `mixed` scenario: gets, first pages, creates, the
//! activity feed, cross-tenant probes, and what the leak check reads from each row the
//! generated client returns ([`Marked`]).
//!
//! Rows this tool creates carry their tenant's marker: an account's name and an
//! activity's subject end in `@<slug>.test` (like a person's email), and their ids are
//! learned as the creating tenant's. Seeded accounts (`Account 3`) carry no marker: they
//! are judged by the ids each tenant listed before the run.

use uuid::Uuid;

use crate::client::types;
use crate::engine::{Rng, timed};
use crate::leak::{Marked, Row, marked_name};
use crate::run_state::{Outcome, Shared, Who};

impl Marked for types::Person {
    fn rows(&self, f: &mut dyn FnMut(Row<'_>)) {
        f(Row {
            kind: "person",
            id: self.id,
            marker: self.email.as_deref(),
            reference: false,
        });
        // A joined read (`include_account_name=true`) names the person's account: the
        // join must stay in the tenant.
        if let Some(account) = self.account_id {
            f(Row {
                kind: "person.account",
                id: account,
                marker: self.account_name.as_deref(),
                reference: true,
            });
        }
    }
}

impl Marked for types::Account {
    fn rows(&self, f: &mut dyn FnMut(Row<'_>)) {
        f(Row {
            kind: "account",
            id: self.id,
            marker: Some(&self.name),
            reference: false,
        });
    }
}

impl Marked for types::Activity {
    fn rows(&self, f: &mut dyn FnMut(Row<'_>)) {
        f(Row {
            kind: "activity",
            id: self.id,
            marker: Some(&self.subject),
            reference: false,
        });
        f(Row {
            kind: "activity.person",
            id: self.person_id,
            marker: None,
            reference: true,
        });
    }
}

impl Marked for types::FeedItem {
    fn rows(&self, f: &mut dyn FnMut(Row<'_>)) {
        self.activity.rows(f);
        self.person.rows(f);
    }
}

/// The scopes of the API keys `mixed` creates: what its operations need, nothing more.
pub const MIXED_KEY_SCOPES: &[&str] = &[
    "people:read",
    "people:write",
    "accounts:read",
    "accounts:write",
    "activities:read",
    "activities:write",
];

/// A new marked account of tenant `slug`.
pub fn new_account(slug: &str, tag: &str) -> Option<types::AccountCreate> {
    let short = Uuid::new_v4().simple().to_string();
    Some(types::AccountCreate {
        custom_fields: None,
        domain: None,
        name: marked_name(&format!("LT account {tag} {}", &short[..8]), slug)
            .parse()
            .ok()?,
        owner_id: None,
    })
}

/// A new marked activity of tenant `slug` with `person`.
pub fn new_activity(slug: &str, person: Uuid, n: usize) -> Option<types::ActivityCreate> {
    let kinds = [
        types::ActivityKind::Call,
        types::ActivityKind::Email,
        types::ActivityKind::Note,
        types::ActivityKind::Meeting,
    ];
    let kind = kinds[n % kinds.len()];
    Some(types::ActivityCreate {
        body: None,
        kind,
        occurred_at: None,
        person_id: person,
        subject: marked_name(&format!("LT {kind} {n}"), slug).parse().ok()?,
        user_id: None,
    })
}

/// GET an account of the tenant by id.
pub async fn get_account(shared: &Shared, out: &mut Outcome, rng: &mut Rng, who: Who) {
    let ids = &shared.accounts[who.t];
    if ids.is_empty() || !shared.budget.take() {
        return;
    }
    let id = ids[rng.below(ids.len())];
    let call = shared.client(who).get_account().id(id).send();
    if let Ok(rv) = timed(&mut out.rec, "get_account", call).await {
        let account = rv.into_inner();
        if account.id != id {
            out.rec.error("wrong_row");
        }
        let request = format!("GET /v1/accounts/{id}");
        shared.check(&mut out.leaks, who.t, &account, "get_account", &request);
    }
}

/// The first page of the tenant's accounts.
pub async fn list_accounts(shared: &Shared, out: &mut Outcome, who: Who) {
    if !shared.budget.take() {
        return;
    }
    let limit = shared.opts.page_size;
    let call = shared.client(who).list_accounts().limit(limit).send();
    if let Ok(rv) = timed(&mut out.rec, "list_accounts", call).await {
        let request = format!("GET /v1/accounts?limit={limit}");
        shared.check_all(
            &mut out.leaks,
            who.t,
            &rv.into_inner().data,
            "list_accounts",
            &request,
        );
    }
}

/// Creates a marked account; its id is learned as the tenant's.
pub async fn create_account(shared: &Shared, out: &mut Outcome, who: Who) {
    let slug = &shared.tenants[who.t].slug;
    let Some(body) = new_account(slug, "run") else {
        return;
    };
    if !shared.budget.take() {
        return;
    }
    let call = shared.client(who).create_account().body(body).send();
    if let Ok(rv) = timed(&mut out.rec, "create_account", call).await {
        let account = rv.into_inner();
        if shared.check(
            &mut out.leaks,
            who.t,
            &account,
            "create_account",
            "POST /v1/accounts",
        ) == 0
        {
            shared.leak.learn_created(who.t, account.id);
        }
    }
}

/// GET an activity of the tenant by id.
pub async fn get_activity(shared: &Shared, out: &mut Outcome, rng: &mut Rng, who: Who) {
    let ids = &shared.activities[who.t];
    if ids.is_empty() || !shared.budget.take() {
        return;
    }
    let id = ids[rng.below(ids.len())];
    let call = shared.client(who).get_activity().id(id).send();
    if let Ok(rv) = timed(&mut out.rec, "get_activity", call).await {
        let activity = rv.into_inner();
        if activity.id != id {
            out.rec.error("wrong_row");
        }
        let request = format!("GET /v1/activities/{id}");
        shared.check(&mut out.leaks, who.t, &activity, "get_activity", &request);
    }
}

/// The first page of the tenant's activities.
pub async fn list_activities(shared: &Shared, out: &mut Outcome, who: Who) {
    if !shared.budget.take() {
        return;
    }
    let limit = shared.opts.page_size;
    let call = shared.client(who).list_activities().limit(limit).send();
    if let Ok(rv) = timed(&mut out.rec, "list_activities", call).await {
        let request = format!("GET /v1/activities?limit={limit}");
        shared.check_all(
            &mut out.leaks,
            who.t,
            &rv.into_inner().data,
            "list_activities",
            &request,
        );
    }
}

/// The first page of the activity feed (activities joined with their people).
pub async fn activity_feed(shared: &Shared, out: &mut Outcome, who: Who) {
    if !shared.budget.take() {
        return;
    }
    let limit = shared.opts.page_size;
    let call = shared.client(who).list_activity_feed().limit(limit).send();
    if let Ok(rv) = timed(&mut out.rec, "list_activity_feed", call).await {
        let request = format!("GET /v1/activities/feed?limit={limit}");
        let items = rv.into_inner().data;
        for item in &items {
            if item.person.id != item.activity.person_id {
                // Not a leak by itself (both rows are checked), but a broken join.
                out.rec.error("feed_person_mismatch");
            }
        }
        shared.check_all(
            &mut out.leaks,
            who.t,
            &items,
            "list_activity_feed",
            &request,
        );
    }
}

/// Logs a marked activity with one of the tenant's people; its id is learned as the
/// tenant's.
pub async fn create_activity(shared: &Shared, out: &mut Outcome, rng: &mut Rng, who: Who) {
    let people = &shared.ids[who.t];
    if people.is_empty() {
        return;
    }
    let person = people[rng.below(people.len())];
    let slug = &shared.tenants[who.t].slug;
    let Some(body) = new_activity(slug, person, rng.below(1_000_000)) else {
        return;
    };
    if !shared.budget.take() {
        return;
    }
    let call = shared.client(who).create_activity().body(body).send();
    if let Ok(rv) = timed(&mut out.rec, "create_activity", call).await {
        let activity = rv.into_inner();
        if activity.person_id != person {
            out.rec.error("wrong_row");
        }
        if shared.check(
            &mut out.leaks,
            who.t,
            &activity,
            "create_activity",
            "POST /v1/activities",
        ) == 0
        {
            shared.leak.learn_created(who.t, activity.id);
        }
    }
}

/// GETs another tenant's account or activity with this tenant's credential: must be 404.
pub async fn probe(shared: &Shared, out: &mut Outcome, rng: &mut Rng, who: Who) {
    let n = shared.tenants.len();
    let other = (who.t + 1 + rng.below(n - 1)) % n;
    let client = shared.client(who);
    if rng.chance(50) {
        let ids = &shared.accounts[other];
        if ids.is_empty() || !shared.budget.take() {
            return;
        }
        let id = ids[rng.below(ids.len())];
        let result = timed(
            &mut out.rec,
            "get_foreign_account",
            client.get_account().id(id).send(),
        )
        .await;
        let request = format!("GET /v1/accounts/{id}");
        shared.expect_404(out, who.t, result, "get_foreign_account", &request);
    } else {
        let ids = &shared.activities[other];
        if ids.is_empty() || !shared.budget.take() {
            return;
        }
        let id = ids[rng.below(ids.len())];
        let result = timed(
            &mut out.rec,
            "get_foreign_activity",
            client.get_activity().id(id).send(),
        )
        .await;
        let request = format!("GET /v1/activities/{id}");
        shared.expect_404(out, who.t, result, "get_foreign_activity", &request);
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::leak::{LeakCheck, LeakStats, Origin, marker};

    fn rows(value: &dyn Marked) -> Vec<(String, Uuid, Option<String>, bool)> {
        let mut out = Vec::new();
        value.rows(&mut |r| {
            out.push((
                r.kind.to_owned(),
                r.id,
                r.marker.map(str::to_owned),
                r.reference,
            ));
        });
        out
    }

    fn person(account: Option<(Uuid, &str)>) -> types::Person {
        types::Person {
            account_id: account.map(|a| a.0),
            account_name: account.map(|a| a.1.to_owned()),
            created_at: Utc::now(),
            deleted_at: None,
            email: Some("p1@seed-a.test".to_owned()),
            first_name: "P".to_owned(),
            id: Uuid::now_v7(),
            last_name: "Q".to_owned(),
            phone: None,
            stage: types::Stage::Lead,
            title: None,
            updated_at: Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn created_accounts_and_activities_carry_their_tenants_marker() {
        let account = new_account("seed-a", "setup");
        let name = account.as_ref().map(|a| a.name.to_string());
        assert_eq!(marker(name.as_deref()), Some("seed-a"));
        let activity = new_activity("seed-b", Uuid::now_v7(), 5);
        let subject = activity.as_ref().map(|a| a.subject.to_string());
        assert_eq!(marker(subject.as_deref()), Some("seed-b"));
    }

    #[test]
    fn a_joined_person_is_checked_with_its_account() {
        let account = Uuid::now_v7();
        let p = person(Some((account, "LT account x @seed-b.test")));
        let r = rows(&p);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].0, "person.account");
        assert_eq!(r[1].1, account);
        assert!(r[1].3);
        // The account name names another tenant: a leak through the join.
        let check = LeakCheck::new(vec!["seed-a".into(), "seed-b".into()]);
        let mut stats = LeakStats::default();
        let origin = Origin {
            op: "list_people_with_account",
            request: "GET /v1/people?include_account_name=true",
        };
        assert_eq!(check.check_value(&mut stats, 0, &p, origin), 1);
        assert_eq!(stats.evidence[0].kind, "person.account");
        // Without an account, only the person is checked.
        assert_eq!(rows(&person(None)).len(), 1);
    }

    #[test]
    fn a_feed_item_checks_the_activity_and_its_person() {
        let p = person(None);
        let item = types::FeedItem {
            activity: types::Activity {
                body: None,
                created_at: Utc::now(),
                deleted_at: None,
                id: Uuid::now_v7(),
                kind: types::ActivityKind::Call,
                occurred_at: Utc::now(),
                person_id: Uuid::now_v7(),
                subject: "LT call 1 @seed-a.test".to_owned(),
                updated_at: Utc::now(),
                user_id: None,
                version: 1,
            },
            person: p,
        };
        let kinds: Vec<String> = rows(&item).into_iter().map(|r| r.0).collect();
        assert_eq!(kinds, ["activity", "activity.person", "person"]);
    }
}
