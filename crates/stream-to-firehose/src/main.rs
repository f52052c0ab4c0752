use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{LambdaEvent, Runtime, service_fn};
use stream_to_firehose::Config;
use stream_to_firehose::event::RawStreamEvent;
use stream_to_firehose::handler::Forwarder;
use stream_to_firehose::raw_payload::RawPayloadLayer;

// A batch allocates a buffer per image and per line; glibc's malloc spent about a third of the
// transform consolidating and faulting pages in (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = audit_core::startup::init(Config::from_env).await;
    let sdk = audit_core::aws::sdk_config().await;
    let forwarder = Forwarder::new(config, &sdk);
    let forwarder = &forwarder;
    // What `lambda_runtime::run` builds, plus the layer that hands over the event's bytes.
    Runtime::new(service_fn(move |event: LambdaEvent<RawStreamEvent>| {
        forwarder.handle(event)
    }))
    .layer(TracingLayer::new())
    .layer(RawPayloadLayer)
    .run()
    .await
}
