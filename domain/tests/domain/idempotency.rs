use std::time::Duration;

use domain::Error;
use domain::idempotency::{self, Begin};

use crate::support::{assert_not_found, each_backend, invalid_fields};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test]
async fn a_key_is_claimed_then_replayed_with_the_stored_response() {
    each_backend(|w| async move {
        assert_eq!(
            idempotency::begin(&w.a, "api_key:1", "k1", "hash-1", DAY)
                .await
                .unwrap(),
            Begin::New
        );
        assert_eq!(
            idempotency::begin(&w.a, "api_key:1", "k1", "hash-1", DAY)
                .await
                .unwrap(),
            Begin::InProgress
        );
        idempotency::complete(&w.a, "api_key:1", "k1", 201, r#"{"id":"x"}"#)
            .await
            .unwrap();
        let replay = idempotency::begin(&w.a, "api_key:1", "k1", "hash-1", DAY)
            .await
            .unwrap();
        assert_eq!(
            replay,
            Begin::Replay {
                status: 201,
                body: r#"{"id":"x"}"#.into()
            }
        );
        assert_eq!(
            idempotency::begin(&w.a, "api_key:1", "k1", "hash-2", DAY)
                .await
                .unwrap(),
            Begin::Mismatch
        );
        assert_not_found(
            idempotency::complete(&w.a, "api_key:1", "k1", 500, "again").await,
            None,
        );
        assert_not_found(
            idempotency::complete(&w.a, "api_key:1", "never", 200, "").await,
            None,
        );
    })
    .await;
}

#[tokio::test]
async fn an_expired_or_abandoned_key_can_be_claimed_again() {
    each_backend(|w| async move {
        assert_eq!(
            idempotency::begin(&w.a, "user:1", "k", "old", Duration::ZERO)
                .await
                .unwrap(),
            Begin::New
        );
        idempotency::complete(&w.a, "user:1", "k", 200, "old body")
            .await
            .unwrap();
        assert_eq!(
            idempotency::begin(&w.a, "user:1", "k", "new", DAY)
                .await
                .unwrap(),
            Begin::New,
            "expired: taken over"
        );
        assert_eq!(
            idempotency::begin(&w.a, "user:1", "k", "new", DAY)
                .await
                .unwrap(),
            Begin::InProgress
        );

        idempotency::abandon(&w.a, "user:1", "k").await.unwrap();
        assert_eq!(
            idempotency::begin(&w.a, "user:1", "k", "new", DAY)
                .await
                .unwrap(),
            Begin::New,
            "abandoned: free"
        );
        idempotency::complete(&w.a, "user:1", "k", 202, "done")
            .await
            .unwrap();
        idempotency::abandon(&w.a, "user:1", "k").await.unwrap();
        assert!(
            matches!(
                idempotency::begin(&w.a, "user:1", "k", "new", DAY)
                    .await
                    .unwrap(),
                Begin::Replay { status: 202, .. }
            ),
            "a finished key is kept"
        );

        idempotency::begin(&w.a, "user:1", "short", "h", Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(idempotency::purge_expired(&w.a).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn keys_are_scoped_to_the_tenant_and_the_credential() {
    each_backend(|w| async move {
        assert_eq!(
            idempotency::begin(&w.a, "api_key:1", "k", "h", DAY)
                .await
                .unwrap(),
            Begin::New
        );
        assert_eq!(
            idempotency::begin(&w.a, "api_key:2", "k", "h", DAY)
                .await
                .unwrap(),
            Begin::New,
            "another credential"
        );
        assert_eq!(
            idempotency::begin(&w.b, "api_key:1", "k", "h", DAY)
                .await
                .unwrap(),
            Begin::New,
            "another tenant"
        );
        idempotency::complete(&w.b, "api_key:1", "k", 200, "b")
            .await
            .unwrap();
        assert_eq!(
            idempotency::begin(&w.a, "api_key:1", "k", "h", DAY)
                .await
                .unwrap(),
            Begin::InProgress,
            "B's completion is not A's"
        );
        idempotency::abandon(&w.b, "api_key:2", "k").await.unwrap();
        assert_eq!(
            idempotency::begin(&w.a, "api_key:2", "k", "h", DAY)
                .await
                .unwrap(),
            Begin::InProgress,
            "B cannot release A's key"
        );
        assert_eq!(idempotency::purge_expired(&w.b).await.unwrap(), 0);

        let bad = idempotency::begin(&w.a, "", "has space", "h", DAY).await;
        assert_eq!(
            invalid_fields(bad),
            [
                ("credential_id".into(), "invalid_format"),
                ("idempotency_key".into(), "invalid_format")
            ]
        );
        assert!(matches!(
            idempotency::complete(&w.a, "c", &"k".repeat(256), 200, "").await,
            Err(Error::Validation(_))
        ));
    })
    .await;
}
