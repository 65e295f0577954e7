//! The host's network as rkube changes it, through rtnetlink (no `ip` command, no
//! iptables): the routes to other nodes' pod CIDRs (host-gw), addresses on a link (the
//! service proxy's cluster IPs on `lo`), links by name, and IPv4 forwarding.
//!
//! Everything rkube adds is tagged so that a restarted process finds (and can remove)
//! what a dead one left: routes carry the protocol [`ROUTE_PROTOCOL`] (as `ip route`
//! shows `proto 114`), the way routing daemons mark theirs.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

pub use ipnet::Ipv4Net;

/// The routing protocol number on the routes rkube adds (`proto 114` in `ip route`).
/// Unassigned in iproute2's `rt_protos`; routing daemons use their own numbers alike.
pub const ROUTE_PROTOCOL: u8 = 114;

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Kernel {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Netlink { what: String, message: String },
    #[error("no network link named {0:?}")]
    NoLink(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn from_netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
        let what = what.into();
        move |e| match e {
            rtnetlink::Error::NetlinkError(m) => Error::Kernel {
                what,
                source: m.to_io(),
            },
            other => Error::Netlink {
                what,
                message: other.to_string(),
            },
        }
    }

    /// The kernel's errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A route of the main IPv4 table: destination, gateway and metric (`priority`; routes
/// to one destination with different metrics coexist, so the metric can also tell whose
/// a route is).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub metric: u32,
}

/// A connection to the kernel's routing netlink, for the current network namespace.
#[derive(Clone)]
pub struct Net {
    handle: Handle,
}

impl Net {
    /// Opens the netlink socket (its connection runs on the current tokio runtime).
    pub fn connect() -> Result<Net, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(Error::Socket)?;
        tokio::spawn(conn);
        Ok(Net { handle })
    }

    /// The IPv4 routes of the main table with protocol `proto`.
    pub async fn routes(&self, proto: u8) -> Result<Vec<Route>, Error> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut dump = self.handle.route().get(query).execute();
        let mut out = Vec::new();
        while let Some(m) = dump
            .try_next()
            .await
            .map_err(Error::from_netlink("list routes"))?
        {
            if m.header.table != RouteHeader::RT_TABLE_MAIN || u8::from(m.header.protocol) != proto
            {
                continue;
            }
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut gateway = None;
            let mut metric = 0;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                    RouteAttribute::Priority(p) => metric = *p,
                    _ => {}
                }
            }
            let Ok(destination) = Ipv4Net::new(dst, m.header.destination_prefix_length) else {
                continue;
            };
            out.push(Route {
                destination,
                gateway,
                metric,
            });
        }
        out.sort();
        Ok(out)
    }

    /// Adds, or replaces, `destination via gateway metric m` tagged with `proto`.
    pub async fn replace_route(&self, r: &Route, proto: u8) -> Result<(), Error> {
        self.handle
            .route()
            .add(route_message(r, proto))
            .replace()
            .execute()
            .await
            .map_err(Error::from_netlink(format!("add route {}", describe(r))))
    }

    /// Removes a route (one that is already gone is no error).
    pub async fn delete_route(&self, r: &Route, proto: u8) -> Result<(), Error> {
        match self
            .handle
            .route()
            .del(route_message(r, proto))
            .execute()
            .await
        {
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -ESRCH => Ok(()),
            r2 => r2.map_err(Error::from_netlink(format!("delete route {}", describe(r)))),
        }
    }

    /// The index of the link named `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, Error> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.header.index),
            Ok(None) => Err(Error::NoLink(name.to_string())),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -ENODEV => {
                Err(Error::NoLink(name.to_string()))
            }
            Err(e) => Err(Error::from_netlink(format!("find link {name}"))(e)),
        }
    }

    /// Whether a link named `name` exists.
    pub async fn link_exists(&self, name: &str) -> Result<bool, Error> {
        match self.link_index(name).await {
            Ok(_) => Ok(true),
            Err(Error::NoLink(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes the link named `name` (one that does not exist is no error).
    pub async fn delete_link(&self, name: &str) -> Result<(), Error> {
        let index = match self.link_index(name).await {
            Ok(i) => i,
            Err(Error::NoLink(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(Error::from_netlink(format!("delete link {name}")))
    }

    /// The IPv4 addresses (with prefix) on the link with index `link`, with their
    /// labels.
    pub async fn addresses(&self, link: u32) -> Result<Vec<(Ipv4Net, String)>, Error> {
        let mut dump = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link)
            .execute();
        let mut out = Vec::new();
        while let Some(m) = dump
            .try_next()
            .await
            .map_err(Error::from_netlink("list addresses"))?
        {
            if m.header.index != link {
                continue;
            }
            let mut ip = None;
            let mut label = String::new();
            for a in &m.attributes {
                match a {
                    AddressAttribute::Local(IpAddr::V4(v4)) => ip = Some(*v4),
                    AddressAttribute::Address(IpAddr::V4(v4)) if ip.is_none() => ip = Some(*v4),
                    AddressAttribute::Label(l) => label = l.clone(),
                    _ => {}
                }
            }
            if let Some(net) = ip.and_then(|ip| Ipv4Net::new(ip, m.header.prefix_len).ok()) {
                out.push((net, label));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Adds `addr` to the link (already there is no error), with `label` if given (an
    /// IPv4 label must be the link's name or start with `<link name>:`, 15 bytes at most).
    pub async fn add_address(
        &self,
        link: u32,
        addr: Ipv4Net,
        label: Option<&str>,
    ) -> Result<(), Error> {
        let mut req = self
            .handle
            .address()
            .add(link, IpAddr::V4(addr.addr()), addr.prefix_len());
        if let Some(l) = label {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(l.to_string()));
        }
        match req.execute().await {
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -EEXIST => Ok(()),
            r => r.map_err(Error::from_netlink(format!("add address {addr}"))),
        }
    }

    /// Removes `addr` from the link (already gone is no error).
    pub async fn delete_address(&self, link: u32, addr: Ipv4Net) -> Result<(), Error> {
        let mut dump = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link)
            .set_address_filter(IpAddr::V4(addr.addr()))
            .set_prefix_length_filter(addr.prefix_len())
            .execute();
        while let Some(m) = dump
            .try_next()
            .await
            .map_err(Error::from_netlink("list addresses"))?
        {
            match self.handle.address().del(m).execute().await {
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EADDRNOTAVAIL => {}
                r => r.map_err(Error::from_netlink(format!("delete address {addr}")))?,
            }
        }
        Ok(())
    }

    /// The name of the link with index `index`.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>, Error> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -ENODEV => Ok(None),
            Err(e) => Err(Error::from_netlink(format!("find link {index}"))(e)),
        }
    }
}

/// Turns on IPv4 forwarding in this network namespace (pods' traffic to other nodes
/// leaves through the host), as k3s and flannel do.
pub fn enable_ipv4_forwarding() -> Result<(), Error> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH).is_ok_and(|s| s.trim() == "1") {
        return Ok(());
    }
    std::fs::write(PATH, "1").map_err(|source| Error::Io {
        what: format!("enable IPv4 forwarding ({PATH})"),
        source,
    })
}

/// The netlink message of `r` tagged with `proto`, for adding and deleting alike.
fn route_message(r: &Route, proto: u8) -> netlink_packet_route::route::RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(r.destination.network(), r.destination.prefix_len())
        .protocol(RouteProtocol::from(proto))
        .priority(r.metric);
    if let Some(gw) = r.gateway {
        b = b.gateway(gw);
    }
    b.build()
}

fn describe(r: &Route) -> String {
    match r.gateway {
        Some(gw) => format!("{} via {gw} metric {}", r.destination, r.metric),
        None => format!("{} metric {}", r.destination, r.metric),
    }
}

// errno values (Linux, all architectures rkube runs on).
const ESRCH: i32 = 3;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;
