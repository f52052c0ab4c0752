//! Hands the handler the invocation's event as the bytes the Runtime API sent.
//!
//! `lambda_runtime` deserialises every event with `serde_json` (through
//! `serde_path_to_error`) before the handler runs, and offers no raw-bytes handler. For this
//! function that pass cost more than the whole transform (`benches/transform.rs`,
//! BENCHMARKS.md), and [`crate::event::read_batch`] reads the same bytes again anyway. So
//! [`RawPayloadLayer`], the outermost layer of the runtime, takes the body out of the
//! invocation and leaves `null` in its place; the runtime then deserialises that `null` as a
//! [`RawStreamEvent`], whose `Deserialize` collects the body the layer put aside. The bytes
//! are reference-counted, never copied.
//!
//! This relies on the runtime deserialising within the call to its service, on the same
//! thread, which `lambda_runtime` 1.x does. Should that change, the payload fails to
//! deserialise with the message below, on the first invocation: the binary's end-to-end test
//! (`tests/pipeline.rs`) runs it under the local Runtime API. One effect to know: the
//! runtime's own TRACE log of the raw event shows `null`.

use crate::event::RawStreamEvent;
use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::{Layer, Service};
use std::cell::RefCell;
use std::task::{Context, Poll};

thread_local! {
    /// The body between the layer's call and the payload's deserialisation, on one thread.
    static SET_ASIDE: RefCell<Option<bytes::Bytes>> = const { RefCell::new(None) };
}

/// The placeholder the runtime deserialises instead of the event.
const PLACEHOLDER: &[u8] = b"null";

/// The layer; add it last, so it runs first (`Runtime::layer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPayloadLayer;

impl<S> Layer<S> for RawPayloadLayer {
    type Service = RawPayloadService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RawPayloadService { inner }
    }
}

/// The service [`RawPayloadLayer`] wraps around the runtime's.
#[derive(Debug, Clone)]
pub struct RawPayloadService<S> {
    inner: S,
}

impl<S> Service<LambdaInvocation> for RawPayloadService<S>
where
    S: Service<LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, bytes::Bytes::from_static(PLACEHOLDER));
        SET_ASIDE.with(|slot| *slot.borrow_mut() = Some(body));
        let future = self.inner.call(invocation);
        // Normally taken by the payload's deserialisation; never left for the next event.
        SET_ASIDE.with(|slot| slot.borrow_mut().take());
        future
    }
}

impl<'de> serde::Deserialize<'de> for RawStreamEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        SET_ASIDE
            .with(|slot| slot.borrow_mut().take())
            .map(RawStreamEvent)
            .ok_or_else(|| {
                serde::de::Error::custom(
                    "the stream event is taken from the invocation by RawPayloadLayer, \
                     which the runtime does not have (see stream_to_firehose::raw_payload)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_layer_the_payload_is_refused_with_a_message_naming_it() {
        let error = serde_json::from_str::<RawStreamEvent>("null").unwrap_err();
        assert!(error.to_string().contains("RawPayloadLayer"), "{error}");
    }

    #[test]
    fn the_layer_hands_the_body_to_the_payload_and_the_runtime_sees_the_placeholder() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen_by_inner = seen.clone();
        let inner = lambda_runtime::tower::service_fn(move |invocation: LambdaInvocation| {
            assert_eq!(&invocation.body[..], PLACEHOLDER);
            // What the runtime does inside its call: deserialise the body it was given.
            let payload: RawStreamEvent = serde_json::from_slice(&invocation.body).unwrap();
            *seen_by_inner.lock().unwrap() = Some(payload.0);
            std::future::ready(Ok::<(), std::convert::Infallible>(()))
        });
        let mut service = RawPayloadLayer.layer(inner);
        let body = bytes::Bytes::from_static(br#"{"Records":[]}"#);
        let (parts, ()) = http::Response::new(()).into_parts();
        let invocation = LambdaInvocation {
            parts,
            body: body.clone(),
            context: lambda_runtime::Context::default(),
        };
        drop(service.call(invocation));
        assert_eq!(seen.lock().unwrap().take(), Some(body));
        // Nothing is left behind for a later event.
        assert!(SET_ASIDE.with(|slot| slot.borrow().is_none()));
    }
}
