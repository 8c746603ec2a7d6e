//! The AWS SDK configuration of every Tendon process, loaded once.
//!
//! In a Lambda function the SDK's HTTPS client trusts only the Amazon Trust
//! Services roots (`amazon-trust-services.pem`), which issue the certificates
//! of every AWS service endpoint. That is a narrower trust than the system's
//! ~140 roots, and it is what keeps a function's init near a hello-world
//! Lambda's: parsing the system bundle took 6 of its 11 ms
//! (docs/benchmarks.md, "Lambda init time"). Elsewhere (the CLI, `tendon
//! serve --backend aws`, tests) the system roots stay, so a TLS-inspecting
//! proxy or an `AWS_ENDPOINT_URL` with a private CA keeps working.
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{ConfigBag, RuntimeComponents, SharedHttpClient};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpConnector,
};
use tokio::sync::OnceCell;

/// Amazon Root CA 1-4 and Starfield Services Root G2 (their cross-signer).
pub const AMAZON_TRUST_SERVICES_PEM: &str = include_str!("amazon-trust-services.pem");

/// An HTTPS client (rustls on aws-lc, as the SDK's default) that trusts only
/// [`AMAZON_TRUST_SERVICES_PEM`]; it builds its TLS connector on the first
/// request only ([`ConnectOnFirstRequest`]).
pub fn amazon_only_http_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_PEM.as_bytes());
    // Infallible for a trust store alone; the default context if it ever fails.
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    SharedHttpClient::new(ConnectOnFirstRequest(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    ))
}

/// An SDK HTTP client that skips the client-construction check.
///
/// The SDK's hyper client, when each service client is built, builds a TLS
/// connector and throws it away, "so that native certs load at client
/// initialization time". The connector that requests use is built again, and
/// cached, on the first request. With only the five Amazon roots, that is
/// nothing to load early. Without the check a function with four service
/// clients builds one TLS configuration instead of five, and none at init
/// (docs/benchmarks.md, "Lambda init time").
#[derive(Debug)]
pub struct ConnectOnFirstRequest(pub SharedHttpClient);

impl HttpClient for ConnectOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    // validate_base_client_config: the trait's default, which checks nothing.

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The SDK configuration from the environment (aws-config's default chain,
/// `AWS_ENDPOINT_URL` included), loaded once per process so the store and the
/// mailer share one HTTP connection pool.
pub async fn config() -> SdkConfig {
    static CONFIG: OnceCell<SdkConfig> = OnceCell::const_new();
    CONFIG
        .get_or_init(|| async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
                // Lambda gives the role's credentials and the region as
                // environment variables, the first places the default chains
                // look; naming them skips building the rest of those chains
                // (profile files, SSO, STS web identity, ECS, IMDS), a third
                // of a function's init.
                loader = loader
                    .http_client(amazon_only_http_client())
                    .credentials_provider(EnvironmentVariableCredentialsProvider::new());
                if let Some(region) = std::env::var("AWS_REGION")
                    .ok()
                    .filter(|r| !r.trim().is_empty())
                {
                    loader = loader.region(Region::new(region));
                }
            }
            loader.load().await
        })
        .await
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the construction checks; sends nothing.
    #[derive(Debug, Default)]
    struct Probe(Arc<AtomicUsize>);

    impl HttpClient for Probe {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            unreachable!("the test sends no request")
        }

        fn validate_base_client_config(
            &self,
            _: &aws_sdk_dynamodb::config::RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    #[tokio::test]
    async fn service_clients_are_built_without_the_http_clients_construction_check() {
        for (wrapped, checks) in [(false, 2), (true, 0)] {
            let count = Arc::new(AtomicUsize::new(0));
            let probe = SharedHttpClient::new(Probe(count.clone()));
            let http = if wrapped {
                SharedHttpClient::new(ConnectOnFirstRequest(probe))
            } else {
                probe
            };
            let sdk = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
                .http_client(http)
                .load()
                .await;
            let before = count.load(Ordering::Relaxed);
            let _ = (
                aws_sdk_dynamodb::Client::new(&sdk),
                aws_sdk_sqs::Client::new(&sdk),
            );
            assert_eq!(
                count.load(Ordering::Relaxed) - before,
                checks,
                "wrapped: {wrapped}"
            );
        }
    }

    #[test]
    fn the_amazon_roots_are_five_parsable_certificates() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .expect("every certificate is valid PEM");
        assert_eq!(certs.len(), 5);
        let mut roots = rustls::RootCertStore::empty();
        let (added, rejected) = roots.add_parsable_certificates(certs);
        assert_eq!((added, rejected), (5, 0), "each is a usable trust anchor");
    }
}
