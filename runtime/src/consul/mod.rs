//! A typed client for the part of Consul's HTTP API that registration and discovery use.
