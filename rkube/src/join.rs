//! Joining a server as k3s agents do: the token `K10<sha256 of the CA>::server:<secret>`
//! pins the cluster CA, fetched from `/cacerts` and checked against the token before it is
//! trusted; the token then authenticates as a bearer token.

use anyhow::{bail, Context, Result};
use sha2::Digest;

/// A `kube` client for the server at `url`, authenticated by `token`.
pub async fn client(url: &str, token: &str) -> Result<kube::Client> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--server {url:?} is not a URL (https://host:6443)"))?;
    let Some(hash) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .map(|(h, _)| h.to_string())
    else {
        bail!("the token is not a full join token (K10<hash>::server:<secret>): copy it from the server's <data-dir>/server/token");
    };
    let mut insecure = kube::Config::new(uri.clone());
    insecure.accept_invalid_certs = true;
    let probe = kube::Client::try_from(insecure)?;
    let req = http::Request::get("/cacerts").body(Vec::new())?;
    let pem = probe.request_text(req).await.with_context(|| {
        format!("cannot fetch the cluster CA from {url}/cacerts: is the server running?")
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
    let mut cfg = kube::Config::new(uri);
    cfg.root_cert = Some(der.into_iter().map(|c| c.to_vec()).collect());
    cfg.auth_info.token = Some(token.to_string().into());
    Ok(kube::Client::try_from(cfg)?)
}
