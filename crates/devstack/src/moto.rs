//! The moto server: every AWS API the tests need on one loopback port.
//!
//! One server per test process, started on first use and stopped when the process ends.
//! Tests stay independent by working in a region of their own ([`Moto::isolated`]): moto
//! keeps each region's state apart, so a test that lists "every DB instance" sees only its own.

use crate::process::{GuardedProcess, free_port};
use crate::{python_tools, scratch_dir};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Regions moto serves; each [`Moto::isolated`] call takes the next one.
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
    "ap-east-1",
    "eu-central-2",
    "ap-south-2",
    "il-central-1",
];

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    endpoint: String,
    _process: GuardedProcess,
    next_region: AtomicUsize,
}

/// The process-wide moto server, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("devstack: moto server: {e}")))
}

impl Moto {
    /// Starts a new server on a free loopback port (see [`moto`] for the shared one).
    pub fn start() -> Result<Self, String> {
        let venv = python_tools()?;
        let scratch = scratch_dir("moto")?;
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let process = GuardedProcess::spawn(
                &venv.join("bin/moto_server"),
                &[
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ],
                &[],
                &scratch.join(format!("moto-{port}.log")),
                "TERM",
                None,
            )
            .map_err(|e| {
                format!(
                    "cannot start {}: {e}",
                    venv.join("bin/moto_server").display()
                )
            })?;
            let mut process = process;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            // Listening, then answering its own API (moto's Flask app is imported after the
            // socket is bound on some versions).
            let serving = process
                .wait_for_port(addr, Duration::from_secs(60))
                .and_then(|()| {
                    process.wait_until("serving /moto-api/", Duration::from_secs(60), || {
                        crate::process::http_status(addr, "/moto-api/data.json") == Some(200)
                    })
                });
            match serving {
                Ok(()) => {
                    return Ok(Moto {
                        endpoint: format!("http://{addr}"),
                        _process: process,
                        next_region: AtomicUsize::new(0),
                    });
                }
                Err(e) => last_error = e, // most likely the port was taken meanwhile
            }
        }
        Err(last_error)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An account view of its own: a region no other caller of this server has been given
    /// (until the list wraps around after 24 calls).
    pub fn isolated(&self) -> AwsEnv {
        let n = self.next_region.fetch_add(1, Ordering::Relaxed);
        AwsEnv {
            endpoint: self.endpoint.clone(),
            region: REGIONS[n % REGIONS.len()].to_owned(),
        }
    }
}

/// Where and as whom an SDK client or a function binary talks to the emulator.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    pub endpoint: String,
    pub region: String,
}

impl AwsEnv {
    /// The standard SDK variables: endpoint override, region, dummy credentials.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", self.region.as_str()),
            ("AWS_DEFAULT_REGION", self.region.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Creates an IAM role in the emulator (moto's Lambda insists the execution role exists)
    /// and returns its ARN. Through IAM's query API, to spare the tests the IAM SDK crate.
    pub async fn lambda_role(&self, name: &str) -> Result<String, String> {
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D"
        );
        let response = reqwest::Client::new()
            .post(&self.endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let text = response.text().await.map_err(|e| e.to_string())?;
        text.split("<Arn>")
            .nth(1)
            .and_then(|rest| rest.split("</Arn>").next())
            .map(str::to_owned)
            .ok_or_else(|| format!("CreateRole: {text}"))
    }

    /// An S3 client for the emulator (path-style addressing).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let sdk = self.sdk_config().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Creates a bucket in this environment's region.
    pub async fn create_bucket(&self, s3: &aws_sdk_s3::Client, name: &str) -> Result<(), String> {
        let mut create = s3.create_bucket().bucket(name);
        if self.region != "us-east-1" {
            // Outside us-east-1, S3 wants the region stated.
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(|e| format!("CreateBucket {name}: {e:?}"))?;
        Ok(())
    }

    /// Creates an on-demand table with a string partition key `key`, and a stream of `stream`
    /// when given; returns the stream ARN, if any.
    pub async fn create_table(
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
        key: &str,
        stream: Option<aws_sdk_dynamodb::types::StreamViewType>,
    ) -> Result<Option<String>, String> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            StreamSpecification,
        };
        let e = |e: &dyn std::fmt::Debug| format!("CreateTable {table}: {e:?}");
        let mut request = dynamodb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|x| e(&x))?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|x| e(&x))?,
            );
        if let Some(view) = stream {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(view)
                    .build()
                    .map_err(|x| e(&x))?,
            );
        }
        let created = request.send().await.map_err(|x| e(&x))?;
        Ok(created
            .table_description()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned))
    }

    /// An object's bytes.
    pub async fn object_bytes(
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<u8>, String> {
        Ok(s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("GetObject {key}: {e:?}"))?
            .body
            .collect()
            .await
            .map_err(|e| format!("GetObject {key}: {e}"))?
            .into_bytes()
            .to_vec())
    }

    /// SDK configuration for the test's own clients (creating fixtures, reading results).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(self.region.clone()))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "devstack",
            ))
            .load()
            .await
    }
}
