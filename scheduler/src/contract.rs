//! The [`StateStore`] contract as a check, which the tests of every adapter run against a real
//! store: memory, the database (SQLite and PostgreSQL) and Dapr's Redis store through a sidecar.
//! The engine relies on exactly this, and on nothing a particular store does beyond it.

use std::time::Duration;

use serde_json::json;

use crate::ports::{Etag, PortError, StateStore, Write};

/// Runs the contract on `store`, with keys under `prefix` (unique to the run, as stores are
/// shared). Panics with what broke.
pub async fn check(store: &dyn StateStore, prefix: &str) {
    let key = |name: &str| format!("{prefix}:{name}");
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let value = |n: i64| json!({ "n": n });

    // Single writes: an insert only over nothing, a write only over the version read.
    assert!(
        get(store, &a).await.is_none(),
        "a missing key reads as None"
    );
    store.put(&a, &value(1), None, None).await.expect("insert");
    let (read, e1) = get(store, &a).await.expect("inserted");
    assert_eq!(read, value(1));
    conflict(
        store.put(&a, &value(2), None, None).await,
        "an insert over a key",
    );
    store
        .put(&a, &value(2), Some(&e1), None)
        .await
        .expect("write over the version read");
    conflict(
        store.put(&a, &value(3), Some(&e1), None).await,
        "a write over a stale version",
    );
    conflict(
        store.delete(&a, Some(&e1)).await,
        "a delete at a stale version",
    );
    let (read, e2) = get(store, &a).await.expect("still there");
    assert_eq!(read, value(2));
    store
        .delete(&a, Some(&e2))
        .await
        .expect("delete at the version read");
    store
        .delete(&a, None)
        .await
        .expect("deleting a missing key is no error");

    // Several keys read in order, missing ones as None.
    let writes = [insert(&a, 10), insert(&b, 20)];
    store
        .transact(&writes)
        .await
        .expect("a transaction of inserts");
    let many = store
        .get_many(&[b.clone(), c.clone(), a.clone()])
        .await
        .expect("get_many");
    let values: Vec<_> = many.into_iter().map(|e| e.map(|(v, _)| v)).collect();
    assert_eq!(values, [Some(value(20)), None, Some(value(10))]);

    // A key written in a transaction refuses an insert, alone or in a transaction, and so does
    // one written alone.
    conflict(
        store.put(&a, &value(11), None, None).await,
        "an insert over a transaction's key",
    );
    conflict(
        store.transact(&[insert(&b, 21)]).await,
        "an insert in a transaction over a key",
    );
    assert_eq!(get(store, &b).await.map(|(v, _)| v), Some(value(20)));

    // A transaction with a failed condition reports a conflict, and leaves that write undone.
    let (_, ea) = get(store, &a).await.expect("a");
    let (_, eb) = get(store, &b).await.expect("b");
    store
        .put(&b, &value(22), Some(&eb), None)
        .await
        .expect("b moves on");
    let writes = [
        Write::Put {
            key: a.clone(),
            value: value(12),
            etag: Some(ea),
            ttl: None,
        },
        Write::Delete {
            key: b.clone(),
            etag: Some(eb),
        },
        insert(&c, 30),
    ];
    conflict(
        store.transact(&writes).await,
        "a transaction with a stale delete",
    );
    assert_eq!(
        get(store, &b).await.map(|(v, _)| v),
        Some(value(22)),
        "the stale delete did nothing"
    );

    // Deletes and writes at the versions read succeed together.
    let (_, ea) = get(store, &a).await.expect("a");
    let (_, eb) = get(store, &b).await.expect("b");
    let writes = [
        Write::Put {
            key: a.clone(),
            value: value(13),
            etag: Some(ea),
            ttl: None,
        },
        Write::Delete {
            key: b.clone(),
            etag: Some(eb),
        },
        Write::Delete {
            key: c.clone(),
            etag: None,
        },
    ];
    store
        .transact(&writes)
        .await
        .expect("a transaction at the versions read");
    assert_eq!(get(store, &a).await.map(|(v, _)| v), Some(value(13)));
    assert!(get(store, &b).await.is_none() && get(store, &c).await.is_none());
    store.delete(&a, None).await.expect("clean up");

    // A write without a TTL never expires, even over an entry that had one (alone or in a
    // transaction): a fired reminder moved to a later time must not vanish with its old TTL.
    let second = Some(Duration::from_secs(1));
    let (d, e) = (key("d"), key("e"));
    for k in [&d, &e] {
        store
            .put(k, &value(40), None, second)
            .await
            .expect("insert with a TTL");
    }
    let (_, ed) = get(store, &d).await.expect("d");
    let (_, ee) = get(store, &e).await.expect("e");
    store
        .put(&d, &value(41), Some(&ed), None)
        .await
        .expect("write over it without a TTL");
    let writes = [Write::Put {
        key: e.clone(),
        value: value(41),
        etag: Some(ee),
        ttl: None,
    }];
    store
        .transact(&writes)
        .await
        .expect("the same in a transaction");
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    for k in [&d, &e] {
        assert_eq!(
            get(store, k).await.map(|(v, _)| v),
            Some(value(41)),
            "{k}: written without a TTL, it does not expire"
        );
        store.delete(k, None).await.expect("clean up");
    }
}

fn insert(key: &str, n: i64) -> Write {
    Write::Put {
        key: key.to_owned(),
        value: json!({ "n": n }),
        etag: None,
        ttl: None,
    }
}

async fn get(store: &dyn StateStore, key: &str) -> Option<(serde_json::Value, Etag)> {
    store.get(key).await.expect("get")
}

fn conflict(result: Result<(), PortError>, what: &str) {
    match result {
        Err(PortError::Conflict) => {}
        other => panic!("{what} should be a conflict, got {other:?}"),
    }
}
