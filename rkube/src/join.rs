//! Joining a server as k3s agents do: the token `K10<sha256 of the CA>::server:<secret>`
//! pins the cluster CA, fetched from `/cacerts` and checked against the token before it is
//! trusted; the token then authenticates as a bearer token.

use anyhow::{bail, Context, Result};
use sha2::Digest;

/// A joined server: an authenticated client and the cluster CA it was pinned to.
pub struct Joined {
    pub client: kube::Client,
    /// The cluster CA (PEM), as `/cacerts` served it and the token's hash confirmed.
    pub ca_pem: String,
}

/// A `kube` client for the server at `url`, authenticated by `token`.
pub async fn client(url: &str, token: &str) -> Result<kube::Client> {
    Ok(join(url, token).await?.client)
}

/// Fetches and pins the cluster CA, builds a client authenticated by `token` and checks
/// that the server accepts it (so a wrong secret is an error here, not a kubelet failing
/// later).
pub async fn join(url: &str, token: &str) -> Result<Joined> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--server {url:?} is not a URL (https://host:6443)"))?;
    let token = token.trim();
    let Some(hash) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .map(|(h, _)| h.to_string())
    else {
        bail!("the token is not a full join token (K10<hash>::server:<secret>): copy it from the server's <data-dir>/server/token");
    };
    let mut insecure = kube::Config::new(uri.clone());
    insecure.accept_invalid_certs = true;
    insecure.connect_timeout = Some(std::time::Duration::from_secs(10));
    let probe = kube::Client::try_from(insecure)?;
    let req = http::Request::get("/cacerts").body(Vec::new())?;
    let pem = probe.request_text(req).await.with_context(|| {
        format!(
            "cannot fetch the cluster CA from {url}/cacerts: is the server running? check --server"
        )
    })?;
    let got: String = sha2::Sha256::digest(pem.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != hash {
        bail!("the server at {url} presents a CA that does not match the join token: wrong --server or --token");
    }
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the server's /cacerts holds no certificate")?;
    if der.is_empty() {
        bail!("the server's /cacerts holds no certificate");
    }
    let mut cfg = kube::Config::new(uri);
    cfg.root_cert = Some(der.into_iter().map(|c| c.to_vec()).collect());
    cfg.auth_info.token = Some(token.to_string().into());
    let client = kube::Client::try_from(cfg)?;
    // The CA matched, so the server is the right one; now the secret.
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    match nodes
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => bail!(
            "the server at {url} refused the join token ({} {}): wrong --token",
            s.code,
            s.reason
        ),
        Err(e) => return Err(e).with_context(|| format!("the server at {url} did not answer")),
    }
    Ok(Joined {
        client,
        ca_pem: pem,
    })
}
