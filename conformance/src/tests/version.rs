//! server version: upstream's test/e2e/apimachinery/server_version.go.

use anyhow::{ensure, Context};
use regex::Regex;

use super::test;
use crate::{Ctx, Test};

const AREA: &str = "server version";

pub fn tests() -> Vec<Test> {
    vec![test!(
        AREA,
        "Confirm a server version",
        "[sig-api-machinery] server version should find the server version [Conformance]",
        server_version
    )]
}

/// GET /version: the major version is one digit 1-9, the minor version's digits are its
/// first run of digits (upstream's regexps).
async fn server_version(ctx: Ctx) -> anyhow::Result<()> {
    let v = ctx
        .client
        .apiserver_version()
        .await
        .context("Fail to access ServerVersion")?;
    let major = Regex::new("[1-9]")?
        .find(&v.major)
        .map_or("", |m| m.as_str());
    ensure!(
        major == v.major,
        "unable to find major version: {major:?} != {:?}",
        v.major
    );
    let clean_minor = Regex::new("[^0-9]+")?.replace_all(&v.minor, "");
    let minor = Regex::new("[0-9]+")?
        .find(&v.minor)
        .map_or("", |m| m.as_str());
    ensure!(
        minor == clean_minor,
        "unable to find minor version: {minor:?} != {clean_minor:?}"
    );
    Ok(())
}
