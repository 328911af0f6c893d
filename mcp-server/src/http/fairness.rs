//! Per-user fairness on `/mcp`: a rate limit (requests per second, with a burst) and a share of
//! the server (requests in flight at once, each of which may hold a database connection). One
//! user, or a runaway agent, flooding the server cannot starve the others.
//!
//! A request over either limit waits, up to [`MAX_WAIT`], without using the CPU: most bursts are
//! then served a little late instead of refused, and a client that ignores `Retry-After` and
//! retries at once ties up its own connections rather than the server's cores. A request that
//! would wait longer, or finds [`MAX_WAITING`] of its user's requests waiting already, gets HTTP
//! 429 with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::mcp::{AuthenticatedUser, RequestLease};

/// The longest a request waits for its user's share before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Requests of one user that may wait at once; more are refused at once.
const MAX_WAITING: usize = 64;

/// Every so many finished requests, the rate state of users not seen lately is forgotten.
const TIDY_EVERY: u64 = 4096;

/// How much of the server one user may use.
#[derive(Debug, Clone, Copy)]
pub struct FairShare {
    /// Requests per second, sustained; `None`: no rate limit.
    pub per_second: Option<NonZeroU32>,
    /// Requests a user may make at once above the sustained rate.
    pub burst: NonZeroU32,
    /// Requests of one user in flight at once.
    pub in_flight: usize,
}

/// One user's share while they have requests in flight or waiting.
struct UserShare {
    running: Arc<Semaphore>,
    waiting: Semaphore,
}

/// The limits' state: one rate limiter, and a share per user with requests in flight.
pub struct Fairness {
    share: FairShare,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    users: Mutex<HashMap<String, Arc<UserShare>>>,
    /// Requests finished, which times the rate limiter's tidying.
    finished: AtomicU64,
}

impl Fairness {
    pub fn new(share: FairShare) -> Self {
        let rate = share
            .per_second
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate).allow_burst(share.burst)));
        Self {
            share,
            rate,
            users: Mutex::default(),
            finished: AtomicU64::new(0),
        }
    }

    /// Admits a request of `user`, waiting up to [`MAX_WAIT`] for its turn, with the permit it
    /// holds while it runs; or says when to come back.
    async fn admit(&self, user: &str) -> Result<OwnedSemaphorePermit, Refusal> {
        let share = self.user_share(user);
        let Ok(_waiting) = share.waiting.try_acquire() else {
            return Err(Refusal::Waiting);
        };
        let deadline = Instant::now() + MAX_WAIT;
        if let Some(rate) = &self.rate {
            let key = user.to_owned();
            while let Err(not_until) = rate.check_key(&key) {
                let wait = not_until.wait_time_from(rate.clock().now());
                if Instant::now() + wait > deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Err(Refusal::Rate(wait.saturating_sub(MAX_WAIT)));
                }
                tokio::time::sleep(wait).await;
            }
        }
        tokio::time::timeout_at(deadline, share.running.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Refusal::InFlight(self.share.in_flight))
    }

    fn user_share(&self, user: &str) -> Arc<UserShare> {
        self.users
            .lock()
            .expect("not poisoned")
            .entry(user.to_owned())
            .or_insert_with(|| {
                Arc::new(UserShare {
                    running: Arc::new(Semaphore::new(self.share.in_flight)),
                    waiting: Semaphore::new(MAX_WAITING),
                })
            })
            .clone()
    }

    /// Forgets the share of a user with nothing in flight or waiting, and now and then the rate
    /// state of users not seen lately, so that memory follows the active users.
    fn release(&self, user: &str) {
        {
            let mut users = self.users.lock().expect("not poisoned");
            let idle = |s: &Arc<UserShare>| {
                Arc::strong_count(s) == 1 && s.running.available_permits() == self.share.in_flight
            };
            if users.get(user).is_some_and(idle) {
                users.remove(user);
            }
        }
        let finished = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(rate) = &self.rate
            && finished.is_multiple_of(TIDY_EVERY)
        {
            rate.retain_recent();
        }
    }
}

/// A request admitted to its user's share, which it holds until dropped: for a transport whose
/// answer outlives its HTTP exchange (HTTP+SSE answers on the session's stream).
pub struct Admission(#[allow(dead_code)] Held);

impl Fairness {
    /// Admits a request of `user` as [`fair_share`] does; the refusal is the 429 to answer.
    pub async fn admit_held(self: &Arc<Self>, user: &str) -> Result<Admission, Response> {
        match self.admit(user).await {
            Ok(permit) => Ok(Admission(Held {
                permit: Some(permit),
                fairness: self.clone(),
                user: user.to_owned(),
            })),
            Err(refusal) => {
                self.release(user);
                metrics::counter!("todo_http_requests_refused_total").increment(1);
                Err(refusal.into_response())
            }
        }
    }
}

/// Why a request was not admitted.
enum Refusal {
    /// Over the rate: how much longer the next request would have to wait.
    Rate(Duration),
    /// As many requests in flight as a user may have, for all the time it waited.
    InFlight(usize),
    /// As many of the user's requests waiting already as may wait.
    Waiting,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (retry_after, message) = match self {
            Refusal::Rate(wait) => (
                wait.as_secs_f64().ceil().max(1.0) as u64,
                "too many requests from this user: slow down and retry after the time in Retry-After"
                    .to_owned(),
            ),
            Refusal::InFlight(n) => (
                1,
                format!("this user already has {n} requests in progress: wait for one to finish"),
            ),
            Refusal::Waiting => (
                1,
                "too many requests from this user are waiting: wait for answers before sending more"
                    .to_owned(),
            ),
        };
        let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    }
}

/// axum middleware (inside [`super::auth::require_bearer`], which names the user): admits the
/// request or answers 429. The permit is held until the response body is finished, as a tool
/// call runs while its result streams, unless the request becomes a lasting stream and gives it
/// back ([`RequestLease`]); a GET (an event stream, or a resumption) runs nothing and holds none
/// once it has begun.
pub async fn fair_share(
    State(fairness): State<Arc<Fairness>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(AuthenticatedUser { user, .. }) =
        request.extensions().get::<AuthenticatedUser>().cloned()
    else {
        return next.run(request).await;
    };
    let admission = match fairness.admit_held(user.as_str()).await {
        Ok(admission) => admission,
        Err(refused) => {
            tracing::debug!(%user, "refused a request over the user's fair share");
            return refused;
        }
    };
    let get = request.method() == axum::http::Method::GET;
    let share: Option<Box<dyn Send + Sync>> = (!get).then(|| Box::new(admission) as _);
    let lease = RequestLease::new(share);
    request.extensions_mut().insert(lease.clone());
    let (parts, body) = next.run(request).await.into_parts();
    // The exchange ends with its body: finished, or dropped when the client hangs up.
    let ended = lease.closed.clone().drop_guard();
    let body = body.into_data_stream().map(move |chunk| {
        let _ = (&lease, &ended);
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// A permit held by a response body, released (and the user's share tidied) when it ends.
struct Held {
    permit: Option<OwnedSemaphorePermit>,
    fairness: Arc<Fairness>,
    user: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.fairness.release(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fairness(per_second: Option<u32>, burst: u32, in_flight: usize) -> Arc<Fairness> {
        Arc::new(Fairness::new(FairShare {
            per_second: per_second.and_then(NonZeroU32::new),
            burst: NonZeroU32::new(burst).unwrap(),
            in_flight,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_waits_for_their_share_in_flight_and_others_do_not() {
        let f = fairness(None, 1, 1);
        let running = f.admit("alice").await.ok().expect("the first is admitted");
        let started = Instant::now();
        assert!(matches!(f.admit("alice").await, Err(Refusal::InFlight(1))));
        assert_eq!(
            started.elapsed(),
            MAX_WAIT,
            "refused after waiting its longest"
        );
        assert!(
            f.admit("bob").await.is_ok(),
            "another user's share is their own"
        );

        // A waiting request goes in as soon as the running one is done.
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.admit("alice").await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(running);
        f.release("alice");
        assert!(waiter.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn only_so_many_requests_of_a_user_wait() {
        let f = fairness(None, 1, 1);
        let _running = f.admit("alice").await.ok().unwrap();
        let waiting: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move { f.admit("alice").await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        while f.user_share("alice").waiting.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        assert!(matches!(f.admit("alice").await, Err(Refusal::Waiting)));
        assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
        for w in waiting {
            assert!(!w.await.unwrap(), "each waited its longest and was refused");
        }
    }

    #[tokio::test]
    async fn over_the_rate_a_request_waits_its_turn_or_is_refused() {
        let f = fairness(Some(1), 2, 100);
        let begun = std::time::Instant::now();
        for _ in 0..2 {
            assert!(f.admit("alice").await.is_ok(), "the burst goes at once");
        }
        assert!(begun.elapsed() < Duration::from_millis(100));
        // Two more at once: the next turn comes in a second, which one of them waits for; the
        // other would wait a second more, past the longest wait, and is refused.
        let (a, b) = tokio::join!(f.admit("alice"), f.admit("alice"));
        assert!(
            begun.elapsed() >= Duration::from_millis(900),
            "{:?}",
            begun.elapsed()
        );
        let refused = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(Refusal::Rate(_))))
            .count();
        assert_eq!((a.is_ok() as u8 + b.is_ok() as u8, refused), (1, 1));
        assert!(
            f.admit("bob").await.is_ok(),
            "another user's rate is their own"
        );
    }
}
