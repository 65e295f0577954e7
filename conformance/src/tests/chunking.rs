//! Servers with support for API chunking: upstream's test/e2e/apimachinery/chunking.go.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use k8s_openapi::api::core::v1::PodTemplate;
use kube::api::{Api, ListParams, PostParams};
use rand::Rng;
use serde_json::json;

use super::test;
use crate::{Ctx, Test};

const AREA: &str = "API Chunking";

/// Upstream's `numberOfTotalResources`.
const TOTAL: usize = 400;

/// Upstream's `storagebackend.DefaultCompactInterval`.
const DEFAULT_COMPACT_INTERVAL: Duration = Duration::from_secs(5 * 60);

pub fn tests() -> Vec<Test> {
    vec![
        test!(
            AREA,
            "API Chunking, server should return chunks of results for list calls",
            "[sig-api-machinery] Servers with support for API chunking should return chunks of results for list calls [Conformance]",
            chunks
        ),
        // Polls for up to twice the compaction interval.
        test!(
            AREA,
            "API Chunking, server should support continue listing from the last key even if the original version has been compacted away",
            "[sig-api-machinery] Servers with support for API chunking should support continue listing from the last key if the original version has been compacted away, though the list is inconsistent [Slow] [Conformance]",
            compacted,
            timeout = 2 * DEFAULT_COMPACT_INTERVAL + Duration::from_secs(180)
        ),
    ]
}

/// Upstream's BeforeEach: `template-0000`..`template-0399`, 20 creations at a time, each
/// tried 4 times.
async fn create_templates(api: &Api<PodTemplate>) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..TOTAL)
        .map(|i| {
            let api = api.clone();
            async move {
                let pt: PodTemplate = serde_json::from_value(json!({
                    "metadata": {"name": format!("template-{i:04}")},
                    "template": {"spec": {"containers": [{"name": "test", "image": "test2"}]}},
                }))?;
                let mut last = None;
                for _ in 0..4 {
                    match api.create(&PostParams::default(), &pt).await {
                        Ok(_) => return Ok(()),
                        Err(e) => last = Some(e),
                    }
                }
                Err(anyhow::anyhow!(
                    "Unable to create template {i}, exiting: {last:?}"
                ))
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    results.into_iter().collect()
}

/// `remainingItemCount` is absent on the last page, and on the others it is what is left.
fn check_remaining(
    cont: Option<&str>,
    remaining: Option<i64>,
    items: usize,
    found: usize,
) -> anyhow::Result<()> {
    if cont.is_none_or(str::is_empty) {
        ensure!(
            remaining.is_none(),
            "remainingItemCount {remaining:?} on the last page"
        );
    } else {
        let r = remaining.context("no remainingItemCount on a page with a continue token")?;
        ensure!(
            r as usize + items + found == TOTAL,
            "remainingItemCount {r} + {items} items + {found} found != {TOTAL}"
        );
    }
    Ok(())
}

async fn chunks(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<PodTemplate> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    create_templates(&api).await?;
    for _ in 0..3 {
        let mut cont: Option<String> = None;
        let mut found = 0;
        let mut last_rv = String::new();
        loop {
            let limit = rand::thread_rng().gen_range(0..(TOTAL / 10) as u32) + 1;
            let mut lp = ListParams::default().limit(limit);
            if let Some(c) = &cont {
                lp = lp.continue_token(c);
            }
            let list = api.list(&lp).await.with_context(|| {
                format!(
                    "failed to list pod templates in namespace: {}, given limit: {limit}",
                    ctx.ns
                )
            })?;
            ensure!(
                list.items.len() <= limit as usize,
                "{} items for limit {limit}",
                list.items.len()
            );
            let rv = list.metadata.resource_version.clone().unwrap_or_default();
            if last_rv.is_empty() {
                last_rv = rv.clone();
            }
            ensure!(
                rv == last_rv,
                "page's resourceVersion {rv:?} differs from the first page's {last_rv:?}"
            );
            check_remaining(
                list.metadata.continue_.as_deref(),
                list.metadata.remaining_item_count,
                list.items.len(),
                found,
            )?;
            for item in &list.items {
                let want = format!("template-{found:04}");
                ensure!(
                    item.metadata.name.as_deref() == Some(want.as_str()),
                    "item {:?}, expected {want}",
                    item.metadata.name
                );
                found += 1;
            }
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                None => break,
                Some(c) => cont = Some(c),
            }
        }
        ensure!(found == TOTAL, "found {found} of {TOTAL}");
    }
    let list = api
        .list(&ListParams::default().limit(TOTAL as u32 + 1))
        .await
        .context("failed to list pod templates all at once")?;
    ensure!(
        list.items.len() == TOTAL,
        "{} items all at once",
        list.items.len()
    );
    Ok(())
}

/// The names of a page's items must go on from `found`.
fn check_names(items: &[PodTemplate], found: &mut usize) -> anyhow::Result<()> {
    for item in items {
        let want = format!("template-{:04}", *found);
        ensure!(
            item.metadata.name.as_deref() == Some(want.as_str()),
            "item {:?}, expected {want}",
            item.metadata.name
        );
        *found += 1;
    }
    Ok(())
}

async fn compacted(ctx: Ctx) -> anyhow::Result<()> {
    let api: Api<PodTemplate> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    create_templates(&api).await?;
    let one_tenth = (TOTAL / 10) as u32;
    let list = api
        .list(&ListParams::default().limit(one_tenth))
        .await
        .context("failed to list pod templates")?;
    let first_token = list.metadata.continue_.clone().unwrap_or_default();
    let first_rv = list.metadata.resource_version.clone().unwrap_or_default();
    check_remaining(
        list.metadata.continue_.as_deref(),
        list.metadata.remaining_item_count,
        list.items.len(),
        0,
    )?;

    // The second page, every 20 seconds, until the token expires (upstream ignores the
    // poll's own timeout; an empty token then fails below).
    let mut inconsistent = String::new();
    let deadline = tokio::time::Instant::now() + 2 * DEFAULT_COMPACT_INTERVAL;
    while tokio::time::Instant::now() + Duration::from_secs(20) <= deadline {
        tokio::time::sleep(Duration::from_secs(20)).await;
        match api
            .list(
                &ListParams::default()
                    .limit(one_tenth)
                    .continue_token(&first_token),
            )
            .await
        {
            Ok(_) => continue,
            Err(kube::Error::Api(s)) if s.code == 410 && s.reason == "Expired" => {
                // kube's ErrorResponse drops the Status's metadata: read it again raw.
                inconsistent = expired_continue(&ctx, &first_token, one_tenth).await?;
                ensure!(!inconsistent.is_empty(), "expect non empty continue token");
                break;
            }
            Err(e) => bail!("listing with the first token: {e}"),
        }
    }

    let list = api
        .list(
            &ListParams::default()
                .limit(one_tenth)
                .continue_token(&inconsistent),
        )
        .await
        .with_context(|| {
            format!(
                "failed to list pod templates given inconsistent continue token {inconsistent:?}"
            )
        })?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    ensure!(
        rv != first_rv,
        "the inconsistent list has the first list's resourceVersion {rv}"
    );
    ensure!(
        list.items.len() == one_tenth as usize,
        "{} items, expected {one_tenth}",
        list.items.len()
    );
    let mut found = one_tenth as usize;
    check_remaining(
        list.metadata.continue_.as_deref(),
        list.metadata.remaining_item_count,
        list.items.len(),
        found,
    )?;
    check_names(&list.items, &mut found)?;

    let mut cont = list.metadata.continue_.clone().unwrap_or_default();
    let last_rv = rv;
    loop {
        let list = api
            .list(&ListParams::default().limit(one_tenth).continue_token(&cont))
            .await
            .context("failed to list pod templates")?;
        check_remaining(
            list.metadata.continue_.as_deref(),
            list.metadata.remaining_item_count,
            list.items.len(),
            found,
        )?;
        ensure!(list.items.len() <= one_tenth as usize);
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        ensure!(
            rv == last_rv,
            "page's resourceVersion {rv} differs from {last_rv}"
        );
        check_names(&list.items, &mut found)?;
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            None => break,
            Some(c) => cont = c,
        }
    }
    ensure!(found == TOTAL, "found {found} of {TOTAL}");
    Ok(())
}

/// The `metadata.continue` of the 410 Status a list with `token` answers.
async fn expired_continue(ctx: &Ctx, token: &str, limit: u32) -> anyhow::Result<String> {
    let url = format!(
        "/api/v1/namespaces/{}/podtemplates?limit={limit}&continue={token}",
        ctx.ns
    );
    let req = http::Request::get(url).body(Vec::new())?;
    let resp = ctx.client.send(req.map(Into::into)).await;
    let body = match resp {
        Ok(r) => r.into_body().collect_bytes().await?.to_vec(),
        Err(e) => bail!("listing with the expired token: {e}"),
    };
    let status: serde_json::Value = serde_json::from_slice(&body)?;
    ensure!(status["code"] == 410, "expected a 410 Status, got {status}");
    Ok(status["metadata"]["continue"]
        .as_str()
        .unwrap_or("")
        .to_string())
}
