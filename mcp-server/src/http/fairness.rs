//! Per-user fairness on `/mcp`: a rate limit (requests per second, with a burst) and a share of
//! the database's connections (requests in flight at once). A user past either gets HTTP 429
//! with `Retry-After`, and every other user keeps the rest: one user (or a runaway agent) flooding
//! the server cannot starve the others of the pool.

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
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::mcp::AuthenticatedUser;

/// How much of the server one user may use.
#[derive(Debug, Clone, Copy)]
pub struct FairShare {
    /// Requests per second, sustained; `None`: no rate limit.
    pub per_second: Option<NonZeroU32>,
    /// Requests a user may make at once above the sustained rate.
    pub burst: NonZeroU32,
    /// Requests of one user in flight at once (each may hold a database connection).
    pub in_flight: usize,
}

/// The limits' state: one rate limiter and one semaphore per user with requests in flight.
pub struct Fairness {
    share: FairShare,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Requests finished, which times the rate limiter's tidying.
    finished: AtomicU64,
}

/// Every so many finished requests, the rate state of users not seen lately is forgotten.
const TIDY_EVERY: u64 = 4096;

impl Fairness {
    pub fn new(share: FairShare) -> Self {
        let rate = share
            .per_second
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate).allow_burst(share.burst)));
        Self {
            share,
            rate,
            in_flight: Mutex::default(),
            finished: AtomicU64::new(0),
        }
    }

    /// Admits a request of `user`, with the permit it holds while it runs, or says when to
    /// come back.
    fn admit(&self, user: &str) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Some(rate) = &self.rate
            && let Err(not_until) = rate.check_key(&user.to_owned())
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Refusal::Rate(wait));
        }
        let semaphore = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .entry(user.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.share.in_flight)))
            .clone();
        semaphore
            .try_acquire_owned()
            .map_err(|_| Refusal::InFlight(self.share.in_flight))
    }

    /// Forgets the semaphore of a user with nothing in flight, and now and then the rate state
    /// of users not seen lately, so that memory follows the active users.
    fn release(&self, user: &str) {
        {
            let mut in_flight = self.in_flight.lock().expect("not poisoned");
            if in_flight
                .get(user)
                .is_some_and(|s| s.available_permits() == self.share.in_flight)
            {
                in_flight.remove(user);
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

/// Why a request was not admitted.
enum Refusal {
    /// Over the rate: the wait until the next request would be admitted.
    Rate(Duration),
    /// As many requests in flight as a user may have.
    InFlight(usize),
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
/// call runs while its result streams.
pub async fn fair_share(
    State(fairness): State<Arc<Fairness>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(AuthenticatedUser(user)) = request.extensions().get::<AuthenticatedUser>().cloned()
    else {
        return next.run(request).await;
    };
    let user = user.as_str().to_owned();
    let permit = match fairness.admit(&user) {
        Ok(permit) => permit,
        Err(refusal) => {
            metrics::counter!("todo_http_requests_refused_total").increment(1);
            tracing::debug!(%user, "refused a request over the user's fair share");
            return refusal.into_response();
        }
    };
    let (parts, body) = next.run(request).await.into_parts();
    let held = Held {
        permit: Some(permit),
        fairness,
        user,
    };
    let body = body.into_data_stream().map(move |chunk| {
        let _ = &held;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// A permit held by a response body, released (and the user's entry tidied) when it ends.
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
