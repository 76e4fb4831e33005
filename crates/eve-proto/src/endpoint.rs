//! The LPS endpoints, both ends' one list: their wire names (the last segment of the path, as
//! the gateway's config, metrics and logs name them), paths, and the names the signal stream
//! gives them.

use crate::profile::ConfigEndpoint;

/// One endpoint of the Local Profile Server API, under `/api/v1/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    LocalProfile,
    Radio,
    AppInfo,
    AppBootInfo,
    DevInfo,
    Location,
    Network,
    Signal,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::LocalProfile,
        Endpoint::Radio,
        Endpoint::AppInfo,
        Endpoint::AppBootInfo,
        Endpoint::DevInfo,
        Endpoint::Location,
        Endpoint::Network,
        Endpoint::Signal,
    ];

    /// The wire name: the path's last segment (`appinfo`, `local_profile`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::LocalProfile => "local_profile",
            Endpoint::Radio => "radio",
            Endpoint::AppInfo => "appinfo",
            Endpoint::AppBootInfo => "appbootinfo",
            Endpoint::DevInfo => "devinfo",
            Endpoint::Location => "location",
            Endpoint::Network => "network",
            Endpoint::Signal => "signal",
        }
    }

    /// The endpoint a wire name names, if any.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The path under the LPS base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::LocalProfile => "/api/v1/local_profile",
            Endpoint::Radio => "/api/v1/radio",
            Endpoint::AppInfo => "/api/v1/appinfo",
            Endpoint::AppBootInfo => "/api/v1/appbootinfo",
            Endpoint::DevInfo => "/api/v1/devinfo",
            Endpoint::Location => "/api/v1/location",
            Endpoint::Network => "/api/v1/network",
            Endpoint::Signal => "/api/v1/signal",
        }
    }

    /// How the signal stream names it; `None` for the two EVE is never told to poll.
    pub fn config_endpoint(self) -> Option<ConfigEndpoint> {
        match self {
            Endpoint::LocalProfile => Some(ConfigEndpoint::LocalProfile),
            Endpoint::Radio => Some(ConfigEndpoint::Radio),
            Endpoint::AppInfo => Some(ConfigEndpoint::AppInfo),
            Endpoint::AppBootInfo => Some(ConfigEndpoint::AppBootInfo),
            Endpoint::DevInfo => Some(ConfigEndpoint::DevInfo),
            Endpoint::Network => Some(ConfigEndpoint::Network),
            Endpoint::Location | Endpoint::Signal => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Serialized by its wire name.
impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_signal_names_agree() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
            assert_eq!(e.path(), format!("/api/v1/{}", e.name()));
            if let Some(c) = e.config_endpoint() {
                let wire = c.as_str_name().strip_prefix("CONFIG_ENDPOINT_").unwrap();
                assert_eq!(
                    wire.replace('_', ""),
                    e.name().replace('_', "").to_uppercase()
                );
            }
        }
        assert_eq!(Endpoint::from_name("nope"), None);
        let signalled = Endpoint::ALL
            .iter()
            .filter(|e| e.config_endpoint().is_some());
        assert_eq!(signalled.count(), 6);
    }
}
