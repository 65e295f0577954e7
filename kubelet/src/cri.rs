//! A thin typed client of CRI (runtime.v1): RuntimeService and ImageService on one
//! channel over the runtime's unix socket. Each call names itself in its error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;

pub use api::{
    AttachRequest, ContainerConfig, ContainerState, ContainerStatus, ExecRequest, PodSandboxConfig,
    PodSandboxState, PodSandboxStatus,
};

/// A CRI client; cheap to clone (one HTTP/2 channel underneath, reconnected on demand).
#[derive(Clone)]
pub struct Cri {
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
}

fn err(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Cri {
        call,
        status: Box::new(status),
    }
}

fn labels(l: &[(&str, &str)]) -> HashMap<String, String> {
    l.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

impl Cri {
    /// Connects to the runtime's socket.
    pub async fn connect(socket: &Path) -> Result<Cri, Error> {
        let path: PathBuf = socket.to_path_buf();
        let channel = Endpoint::try_from("http://[::1]:0")
            .expect("a static URI")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| {
                Error::Setup(format!(
                    "cannot connect to CRI at {}: {e}",
                    socket.display()
                ))
            })?;
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            img: ImageServiceClient::new(channel).max_decoding_message_size(64 << 20),
        })
    }

    pub async fn version(&self) -> Result<api::VersionResponse, Error> {
        let req = api::VersionRequest {
            version: "v1".into(),
        };
        Ok(self
            .rt
            .clone()
            .version(req)
            .await
            .map_err(err("Version"))?
            .into_inner())
    }

    /// The runtime's conditions (RuntimeReady, NetworkReady).
    pub async fn status(&self) -> Result<Vec<api::RuntimeCondition>, Error> {
        let r = self
            .rt
            .clone()
            .status(api::StatusRequest { verbose: false })
            .await
            .map_err(err("Status"))?
            .into_inner();
        Ok(r.status.map(|s| s.conditions).unwrap_or_default())
    }

    pub async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, Error> {
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        Ok(self
            .rt
            .clone()
            .run_pod_sandbox(req)
            .await
            .map_err(err("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), Error> {
        let req = api::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt
            .clone()
            .stop_pod_sandbox(req)
            .await
            .map_err(err("StopPodSandbox"))?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), Error> {
        let req = api::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt
            .clone()
            .remove_pod_sandbox(req)
            .await
            .map_err(err("RemovePodSandbox"))?;
        Ok(())
    }

    pub async fn pod_sandbox_status(&self, id: &str) -> Result<PodSandboxStatus, Error> {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        self.rt
            .clone()
            .pod_sandbox_status(req)
            .await
            .map_err(err("PodSandboxStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| Error::Setup(format!("PodSandboxStatus of {id}: no status")))
    }

    /// The sandboxes carrying all of `with_labels`.
    pub async fn list_pod_sandboxes(
        &self,
        with_labels: &[(&str, &str)],
    ) -> Result<Vec<api::PodSandbox>, Error> {
        let req = api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: labels(with_labels),
                ..Default::default()
            }),
        };
        Ok(self
            .rt
            .clone()
            .list_pod_sandbox(req)
            .await
            .map_err(err("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, Error> {
        let req = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(self
            .rt
            .clone()
            .create_container(req)
            .await
            .map_err(err("CreateContainer"))?
            .into_inner()
            .container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), Error> {
        let req = api::StartContainerRequest {
            container_id: id.into(),
        };
        self.rt
            .clone()
            .start_container(req)
            .await
            .map_err(err("StartContainer"))?;
        Ok(())
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<(), Error> {
        let req = api::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.rt
            .clone()
            .stop_container(req)
            .await
            .map_err(err("StopContainer"))?;
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Result<(), Error> {
        let req = api::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.rt
            .clone()
            .remove_container(req)
            .await
            .map_err(err("RemoveContainer"))?;
        Ok(())
    }

    /// The containers carrying all of `with_labels` (of one sandbox when `sandbox_id` is
    /// not empty).
    pub async fn list_containers(
        &self,
        sandbox_id: &str,
        with_labels: &[(&str, &str)],
    ) -> Result<Vec<api::Container>, Error> {
        let req = api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                pod_sandbox_id: sandbox_id.into(),
                label_selector: labels(with_labels),
                ..Default::default()
            }),
        };
        Ok(self
            .rt
            .clone()
            .list_containers(req)
            .await
            .map_err(err("ListContainers"))?
            .into_inner()
            .containers)
    }

    /// Runs `cmd` in the container to its end (at most `timeout` seconds): its exit
    /// code and its stdout and stderr together (probes and hooks).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<(i32, String), Error> {
        let req = api::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout,
        };
        let r = self
            .rt
            .clone()
            .exec_sync(req)
            .await
            .map_err(err("ExecSync"))?
            .into_inner();
        let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&r.stderr));
        Ok((r.exit_code, out))
    }

    /// A URL on the runtime's streaming server that runs `cmd` in the container.
    pub async fn exec(&self, req: api::ExecRequest) -> Result<String, Error> {
        Ok(self
            .rt
            .clone()
            .exec(req)
            .await
            .map_err(err("Exec"))?
            .into_inner()
            .url)
    }

    /// A URL on the runtime's streaming server that attaches to the container.
    pub async fn attach(&self, req: api::AttachRequest) -> Result<String, Error> {
        Ok(self
            .rt
            .clone()
            .attach(req)
            .await
            .map_err(err("Attach"))?
            .into_inner()
            .url)
    }

    /// A URL on the runtime's streaming server forwarding to the sandbox's ports.
    pub async fn port_forward(&self, sandbox_id: &str) -> Result<String, Error> {
        let req = api::PortForwardRequest {
            pod_sandbox_id: sandbox_id.into(),
            port: Vec::new(),
        };
        Ok(self
            .rt
            .clone()
            .port_forward(req)
            .await
            .map_err(err("PortForward"))?
            .into_inner()
            .url)
    }

    pub async fn container_status(&self, id: &str) -> Result<ContainerStatus, Error> {
        let req = api::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.rt
            .clone()
            .container_status(req)
            .await
            .map_err(err("ContainerStatus"))?
            .into_inner()
            .status
            .ok_or_else(|| Error::Setup(format!("ContainerStatus of {id}: no status")))
    }

    /// The image if the runtime has it.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>, Error> {
        let req = api::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        };
        Ok(self
            .img
            .clone()
            .image_status(req)
            .await
            .map_err(err("ImageStatus"))?
            .into_inner()
            .image)
    }

    /// Pulls an image (with registries.yaml's credentials for it, if any); returns its
    /// reference (ID).
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<&crate::registries::PullAuth>,
    ) -> Result<String, Error> {
        let req = api::PullImageRequest {
            image: Some(image_spec(image)),
            auth: auth.map(|a| api::AuthConfig {
                username: a.auth.username.clone(),
                password: a.auth.password.clone(),
                auth: a.auth.auth.clone(),
                server_address: a.server_address.clone().unwrap_or_default(),
                identity_token: a.auth.identity_token.clone(),
                registry_token: String::new(),
            }),
            sandbox_config: None,
        };
        Ok(self
            .img
            .clone()
            .pull_image(req)
            .await
            .map_err(err("PullImage"))?
            .into_inner()
            .image_ref)
    }
}
