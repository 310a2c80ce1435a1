//! A real server (console and API merged, as `nexus serve` does) on a fresh SQLite database,
//! and a browser-like client that keeps cookies and says where its forms come from.

use std::sync::Arc;
use std::time::Duration;

use domain::tenant::{Role, UserLevel};
use ledger::checkpoint::CheckpointSigner;
use runtime::web_users::NewWebUser;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};

pub const PASSWORD: &str = "correct horse battery";

pub struct App {
    pub base: String,
    pub runtime: Arc<Runtime>,
    pub db: store::test_support::TestDatabase,
}

pub async fn spawn() -> App {
    let db = store::test_support::sqlite().await;
    let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let config = RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_millis(200),
        token_secret: Some(vec![42; 32]),
        ..RuntimeConfig::default()
    };
    let runtime = Arc::new(
        Runtime::start(RuntimeParts::new(Arc::clone(&db.store), signer, config, None)).await.expect("runtime"),
    );
    let app = console::router(runtime.clone()).merge(gateway::router(gateway::AppState::new(runtime.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    runtime::tasks::spawn("test-server", async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    App { base: format!("http://{address}"), runtime, db }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn user(&self, tenant: &str, email: &str, role: Role, level: u8) {
        let new = NewWebUser {
            tenant: domain::TenantId::parse(tenant).expect("tenant"),
            email: email.into(),
            name: String::new(),
            role,
            level: UserLevel::new(level).expect("level"),
            password: PASSWORD.into(),
        };
        self.runtime.create_web_user(new).await.expect("create user");
    }

    /// A browser: cookies kept, no redirects followed (so tests see them), same-origin forms.
    pub fn browser(&self) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser { client, base: self.base.clone() }
    }

    /// A browser already signed in as `email`.
    pub async fn signed_in(&self, email: &str) -> Browser {
        let browser = self.browser();
        let response = browser.sign_in(email, PASSWORD).await;
        assert_eq!(response.status(), 303, "sign-in redirects home");
        browser
    }
}

pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("body")
    }

    /// Posts a form as the browser would from one of our pages.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).header("sec-fetch-site", "same-origin").form(form).send().await.expect("POST")
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/login", &[("email", email), ("password", password)]).await
    }

    /// The CSRF token a page's forms carry.
    pub async fn csrf(&self) -> String {
        let html = self.page("/").await;
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
        html[start..].split('"').next().expect("token").to_owned()
    }
}
