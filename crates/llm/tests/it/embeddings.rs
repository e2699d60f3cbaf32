//! Embeddings through the client against the scripted server's `/v1/embeddings`: vectors in input
//! order, cost from the price table, retries of transient failures, no retry of a bad request, no
//! fallback model, and the offline mock provider.

use rvbbit_core::MicroUsd;
use rvbbit_llm::{Client, CostStatus, EmbedRequest, MockProvider, Price, Provider, cosine, hashed_embedding};
use rvbbit_testkit::{EMBED_DIMS, Script, TestServer};

use crate::support::settings;

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn vectors_come_back_in_input_order_with_their_cost() {
    let server = TestServer::start(Script::echo()).await;
    let mut s = settings(&server);
    // $1 per million prompt tokens.
    s.prices.set("acme/embed", Price::new(1_000_000, 0));
    let client = Client::new(s).unwrap();
    let inputs = texts(&["a red apple", "tax return deadline", "Apple, red!"]);
    let reply = client
        .embed(&EmbedRequest::new("acme/embed", inputs.clone()))
        .await
        .unwrap();
    assert_eq!(reply.dimensions(), EMBED_DIMS);
    for (vector, text) in reply.vectors.iter().zip(&inputs) {
        assert_eq!(vector, &hashed_embedding(text, EMBED_DIMS), "{text}");
    }
    assert!(cosine(&reply.vectors[0], &reply.vectors[2]) > 0.8);
    assert!(cosine(&reply.vectors[0], &reply.vectors[1]) < 0.3);
    // 3 + 5 + 3 tokens at 4 bytes a token, as the server counts them.
    assert_eq!(reply.usage.prompt_tokens(), 11);
    assert_eq!(reply.cost.amount, Some(MicroUsd::from_micros(11)));
    assert_eq!(reply.cost.status, CostStatus::Estimated);
    let bodies = server.embed_requests();
    assert_eq!(bodies.len(), 1, "one request for every input");
    assert_eq!(bodies[0]["model"], "acme/embed");
    assert_eq!(bodies[0]["input"].as_array().unwrap().len(), 3);
    assert_eq!(server.requests(), 0, "no chat request");

    // No inputs, no request.
    let empty = client
        .embed(&EmbedRequest::new("acme/embed", Vec::new()))
        .await
        .unwrap();
    assert!(empty.vectors.is_empty());
    assert_eq!(server.embed_requests().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_and_a_bad_request_is_not() {
    let server = TestServer::start(Script::echo()).await;
    let client = Client::new(settings(&server)).unwrap();
    let err = client
        .embed(&EmbedRequest::new("acme/embed", texts(&["!status 503"])))
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-L006", "{err}");
    assert_eq!(server.embed_requests().len(), 4, "the first try and 3 retries");

    let err = client
        .embed(&EmbedRequest::new("acme/embed", texts(&["!status 400"])))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(server.embed_requests().len(), 5, "a bad request is not retried");

    let err = client
        .embed(&EmbedRequest::new("", texts(&["x"])))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("names no model"), "{err}");
}

#[tokio::test]
async fn the_mock_provider_embeds_offline_and_a_provider_without_embeddings_says_so() {
    let mock = MockProvider::default();
    let reply = mock
        .embed(&EmbedRequest::new("any/model", texts(&["one", "two"])))
        .await
        .unwrap();
    assert_eq!(
        reply.vectors,
        vec![hashed_embedding("one", 64), hashed_embedding("two", 64)]
    );
    assert_eq!(reply.cost.amount, Some(MicroUsd::ZERO));

    struct ChatOnly;
    #[async_trait::async_trait]
    impl Provider for ChatOnly {
        fn name(&self) -> &str {
            "chat-only"
        }
        async fn chat(&self, _: &rvbbit_llm::ChatRequest) -> rvbbit_llm::Result<rvbbit_llm::ChatResponse> {
            unreachable!("not called")
        }
    }
    let err = ChatOnly
        .embed(&EmbedRequest::new("m", texts(&["x"])))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not answer embeddings"), "{err}");
}

#[test]
fn the_scripted_server_and_the_mock_embed_alike() {
    for text in ["", "one", "Ünïcode wörds and 42 numbers", "a,b;c"] {
        assert_eq!(
            rvbbit_testkit::hashed_embedding(text, 64),
            hashed_embedding(text, 64),
            "{text}"
        );
    }
}
