//! Services, checks and KV entries, the index, and the notification every blocking query waits on.
//!
//! One [`State`] behind a mutex holds everything a Consul agent and its one-node catalog hold. Every
//! change that a blocking query could see raises [`State::index`] (a stand-in for the Raft index)
//! and records it where the read endpoints look for their own index: per service name, for the
//! catalog as a whole, for KV. As in Consul, a service name's index lives only while the name has
//! instances; a name without any reports the index at which the last name lost its last instance
//! (Consul's `service_last_extinction`), so no entry outlives the services it was kept for.
//! [`Store::write`] publishes the new index on a `watch` channel, so a change wakes every waiting
//! query at once; each then recomputes its answer and goes back to sleep if its own index did
//! not move. [`State::restart`] is an agent restart that lost its data: a fresh state, the index
//! back at [`START_INDEX`], and a new generation so waiters wake even though the index went
//! backwards.
//!
//! A check here is what it is (its definition, status and output), not what runs it: the tasks
//! that run checks live beside the state, keyed by check ID, and follow the registrations the
//! state lists in [`State::take_changed_checks`].
//!
//! Nothing here waits or does I/O; check runners write through the same methods.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::decode::{CheckDef, CheckForm, ServiceDef};

/// The index of a fresh agent (and of one restarted without its data).
pub(crate) const START_INDEX: u64 = 2;

/// The index at which the agent's node entered the catalog: before [`START_INDEX`], at which
/// the agent's first sync modified it (as a Consul server registers its node, then updates it
/// with its tagged addresses and `serfHealth`).
pub(crate) const NODE_CREATE_INDEX: u64 = 1;

/// Consul's check states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        match s {
            "passing" => Some(Status::Passing),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            _ => None,
        }
    }
}

/// A registered service instance: its registration, and when it entered and last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    pub(crate) def: ServiceDef,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

impl Service {
    /// A service about to be stored; the indexes are set as it is.
    pub(crate) fn new(def: ServiceDef) -> Service {
        Service {
            def,
            create_index: 0,
            modify_index: 0,
        }
    }

    fn same_content(&self, other: &Service) -> bool {
        self.def == other.def
    }
}

/// A TTL check's timer.
#[derive(Debug, Clone)]
pub(crate) struct Ttl {
    pub(crate) ttl: Duration,
    /// When the check expires; `None` once it has.
    pub(crate) deadline: Option<Instant>,
    /// The output of the last update, quoted in the expiry output.
    pub(crate) last_output: String,
}

/// A health check, of a service or of the node.
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) status: Status,
    pub(crate) notes: String,
    pub(crate) output: String,
    /// Empty for a node check.
    pub(crate) service_id: String,
    pub(crate) service_name: String,
    /// Consul's `Type`: `http`, `ttl`, `tcp`, `maintenance`, ...
    pub(crate) type_name: String,
    pub(crate) def: CheckDef,
    /// How the check came: with its service, or alone through `/v1/agent/check/register`
    /// (Consul writes its zero `Interval` and `Timeout` differently for each).
    pub(crate) form: CheckForm,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
    /// Since when the check has been critical.
    pub(crate) critical_since: Option<Instant>,
    /// Deregister the service once critical for longer than this.
    pub(crate) reap_after: Option<Duration>,
    pub(crate) ttl: Option<Ttl>,
    /// Identifies this registration of the check to its runner.
    pub(crate) generation: u64,
}

impl Check {
    /// A check in its initial state: critical unless `status` says otherwise.
    pub(crate) fn new(id: String, name: String, status: Option<Status>) -> Check {
        let status = status.unwrap_or(Status::Critical);
        Check {
            id,
            name,
            status,
            notes: String::new(),
            output: String::new(),
            service_id: String::new(),
            service_name: String::new(),
            type_name: String::new(),
            def: CheckDef::default(),
            form: CheckForm::ServiceCheck,
            create_index: 0,
            modify_index: 0,
            critical_since: (status == Status::Critical).then(Instant::now),
            reap_after: None,
            ttl: None,
            generation: 0,
        }
    }

    /// Whether a reader would see no change. The definition's `Status` is left out: it only
    /// sets a new check's first state, and Consul's stored definition has none.
    fn same_content(&self, other: &Check) -> bool {
        let def = |c: &Check| CheckDef {
            status: String::new(),
            ..c.def.clone()
        };
        (
            &self.name,
            self.status,
            &self.notes,
            &self.output,
            &self.service_id,
            &self.type_name,
            self.form,
            def(self),
        ) == (
            &other.name,
            other.status,
            &other.notes,
            &other.output,
            &other.service_id,
            &other.type_name,
            other.form,
            def(other),
        )
    }

    fn set_status(&mut self, status: Status) {
        if status != Status::Critical {
            self.critical_since = None;
        } else if self.critical_since.is_none() {
            self.critical_since = Some(Instant::now());
        }
        self.status = status;
    }
}

/// A check to add.
pub(crate) struct NewCheck {
    pub(crate) check: Check,
}

/// One KV entry.
#[derive(Debug, Clone)]
pub(crate) struct KvEntry {
    pub(crate) value: Vec<u8>,
    pub(crate) flags: u64,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

/// What a blocking query watches: the index, and the generation that a restart bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) generation: u64,
    pub(crate) index: u64,
}

/// Everything the agent knows.
#[derive(Debug)]
pub(crate) struct State {
    /// Raised by every change.
    pub(crate) index: u64,
    /// Bumped by a restart that loses the state.
    pub(crate) generation: u64,
    /// Index of the last change to services, checks or the node.
    pub(crate) catalog_index: u64,
    /// Index of the last change to the service instances themselves (Consul's `services`
    /// table): registered, changed, deregistered. A check's change leaves it, as in Consul,
    /// so that `/v1/catalog/services` blocks through health changes.
    pub(crate) services_index: u64,
    /// Index of the last change to the checks (Consul's `checks` table): a check registered,
    /// changed or removed, and a service deregistered. A service registered without checks
    /// leaves it, so `/v1/health/state/*` blocks through that.
    pub(crate) checks_index: u64,
    /// Index of the last KV write.
    pub(crate) kv_index: u64,
    /// Index of the last change per service name, for the names that have instances.
    pub(crate) name_index: HashMap<String, u64>,
    /// Index at which a service name last lost its last instance (Consul's
    /// `service_last_extinction`); `None` until that happens.
    pub(crate) service_extinction: Option<u64>,
    /// Index at which each deleted KV key went away.
    pub(crate) kv_tombstones: BTreeMap<String, u64>,
    pub(crate) node_id: String,
    pub(crate) services: BTreeMap<String, Service>,
    pub(crate) checks: BTreeMap<String, Check>,
    pub(crate) kv: BTreeMap<String, KvEntry>,
    next_check_generation: u64,
    /// The checks registered, replaced or removed since [`State::take_changed_checks`].
    changed_checks: Vec<String>,
}

impl State {
    pub(crate) fn new(generation: u64) -> State {
        let id: u128 = rand::random();
        let h = format!("{id:032x}");
        State {
            index: START_INDEX,
            generation,
            catalog_index: START_INDEX,
            services_index: START_INDEX,
            checks_index: START_INDEX,
            kv_index: START_INDEX,
            name_index: HashMap::new(),
            service_extinction: None,
            kv_tombstones: BTreeMap::new(),
            node_id: format!(
                "{}-{}-4{}-a{}-{}",
                &h[..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..]
            ),
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            kv: BTreeMap::new(),
            next_check_generation: 0,
            changed_checks: Vec::new(),
        }
    }

    /// Forgets everything, as an agent restarted without its data: a fresh state (a new node ID,
    /// the index back at [`START_INDEX`]) of the next generation. Its checks count as removed.
    pub(crate) fn restart(&mut self) {
        let gone: Vec<String> = self.checks.keys().cloned().collect();
        *self = State::new(self.generation + 1);
        self.changed_checks = gone;
    }

    /// The IDs of the checks registered, replaced or removed since the last call (each once),
    /// for the check runners to follow.
    pub(crate) fn take_changed_checks(&mut self) -> Vec<String> {
        let mut ids = std::mem::take(&mut self.changed_checks);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Records a change to the catalog, touching the given service names.
    fn bump<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) -> u64 {
        let index = self.bump_catalog();
        self.touch(index, names);
        index
    }

    /// Raises the index for a change to the catalog.
    fn bump_catalog(&mut self) -> u64 {
        self.index += 1;
        self.catalog_index = self.index;
        self.index
    }

    /// Records `index` as the last change of each name that has instances; a name that has
    /// none any more loses its entry and raises the extinction index instead.
    fn touch<'a>(&mut self, index: u64, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            if self.services.values().any(|s| s.def.name == name) {
                match self.name_index.get_mut(name) {
                    Some(i) => *i = index,
                    None => {
                        self.name_index.insert(name.to_owned(), index);
                    }
                }
            } else if self.name_index.remove(name).is_some() {
                self.service_extinction = Some(index);
            }
        }
        // A map keeps its capacity when entries go: give it back once most of it is unused.
        let capacity = self.name_index.capacity();
        if capacity > 64 && self.name_index.len() < capacity / 4 {
            self.name_index.shrink_to_fit();
        }
    }

    /// Records a change to a node-level check, which every service's health includes.
    fn bump_node(&mut self) -> u64 {
        let names: Vec<String> = self.services.values().map(|s| s.def.name.clone()).collect();
        self.bump(names.iter().map(String::as_str))
    }

    /// The index a query about service `name` reports: its last change while it has instances;
    /// without any, the last extinction or, before the first, the catalog's.
    pub(crate) fn service_index(&self, name: &str) -> u64 {
        self.name_index
            .get(name)
            .copied()
            .or(self.service_extinction)
            .unwrap_or(self.catalog_index)
    }

    fn next_generation(&mut self) -> u64 {
        self.next_check_generation += 1;
        self.next_check_generation
    }

    /// Adds or replaces a check, keeping the status and output of a check with the same ID when
    /// the registration named no status. Returns whether anything a reader sees changed.
    fn put_check(&mut self, new: NewCheck) -> bool {
        let NewCheck { mut check } = new;
        check.generation = self.next_generation();
        let old = self.checks.get(&check.id);
        // As Consul does, a check that exists keeps its status and output whatever the new
        // registration says ("to avoid potential flapping"): a `Status` in the body only sets
        // a new check's first state.
        if let Some(old) = old {
            check.status = old.status;
            check.output = old.output.clone();
            check.critical_since = old.critical_since;
        }
        if let Some(ttl) = &mut check.ttl {
            ttl.last_output = check.output.clone();
        }
        let changed = old.is_none_or(|old| !old.same_content(&check));
        let (create, modify) = match old {
            Some(old) if !changed => (old.create_index, old.modify_index),
            Some(old) => (old.create_index, 0),
            None => (0, 0),
        };
        check.create_index = create;
        check.modify_index = modify;
        self.changed_checks.push(check.id.clone());
        self.checks.insert(check.id.clone(), check);
        changed
    }

    /// Fills in zero create/modify indexes after a change at `index`.
    fn stamp(&mut self, index: u64) {
        for c in self.checks.values_mut() {
            if c.create_index == 0 {
                c.create_index = index;
            }
            if c.modify_index == 0 {
                c.modify_index = index;
            }
        }
    }

    /// Registers (or replaces) a service with its checks, as the agent's register endpoint does.
    pub(crate) fn add_service(
        &mut self,
        mut service: Service,
        checks: Vec<NewCheck>,
        replace_existing_checks: bool,
    ) {
        let old = self.services.get(&service.def.id).cloned();
        let service_changed = old.as_ref().is_none_or(|o| !o.same_content(&service));
        let ids: Vec<String> = checks.iter().map(|c| c.check.id.clone()).collect();
        let mut checks_changed = false;
        for c in checks {
            checks_changed |= self.put_check(c);
        }
        if replace_existing_checks {
            let stale: Vec<String> = self
                .checks
                .values()
                .filter(|c| c.service_id == service.def.id && !ids.contains(&c.id))
                .map(|c| c.id.clone())
                .collect();
            for id in stale {
                self.checks.remove(&id);
                self.changed_checks.push(id);
                checks_changed = true;
            }
        }
        let index = if service_changed || checks_changed {
            let index = self.bump_catalog();
            if checks_changed {
                self.checks_index = index;
            }
            service.create_index = old.as_ref().map_or(index, |o| o.create_index);
            service.modify_index = if service_changed {
                self.services_index = index;
                index
            } else {
                old.as_ref().map_or(index, |o| o.modify_index)
            };
            self.stamp(index);
            Some(index)
        } else {
            if let Some(o) = &old {
                service.create_index = o.create_index;
                service.modify_index = o.modify_index;
            }
            None
        };
        // Checks keep the service's current tags and name.
        for c in self.checks.values_mut() {
            if c.service_id == service.def.id {
                c.service_name = service.def.name.clone();
            }
        }
        let names = [Some(service.def.name.clone()), old.map(|o| o.def.name)];
        self.services.insert(service.def.id.clone(), service);
        if let Some(index) = index {
            // After the insert, so that the new name counts as having an instance and a
            // renamed service's old name can lose its last one.
            self.touch(index, names.iter().flatten().map(String::as_str));
        }
    }

    /// Adds a check (`/agent/check/register`).
    pub(crate) fn add_check(&mut self, check: NewCheck) {
        let name = check.check.service_name.clone();
        if self.put_check(check) {
            let index = if name.is_empty() {
                self.bump_node()
            } else {
                self.bump([name.as_str()])
            };
            self.checks_index = index;
            self.stamp(index);
        }
    }

    /// Removes a service and its checks. Returns the removed service.
    pub(crate) fn remove_service(&mut self, id: &str) -> Option<Service> {
        let service = self.services.remove(id)?;
        let changed = &mut self.changed_checks;
        self.checks.retain(|check_id, c| {
            let keep = c.service_id != id;
            if !keep {
                changed.push(check_id.clone());
            }
            keep
        });
        // Consul's deregistration writes the checks table whether or not the service had any.
        self.services_index = self.bump([service.def.name.as_str()]);
        self.checks_index = self.services_index;
        Some(service)
    }

    /// Removes a check. Returns whether it existed.
    pub(crate) fn remove_check(&mut self, id: &str) -> bool {
        let Some(check) = self.checks.remove(id) else {
            return false;
        };
        self.changed_checks.push(check.id.clone());
        self.checks_index = if check.service_id.is_empty() {
            // Consul raises the services' index too when a node's check goes.
            self.services_index = self.bump_node();
            self.services_index
        } else {
            self.bump([check.service_name.as_str()])
        };
        true
    }

    /// Sets a check's status and output; with `generation`, only if the check is still that
    /// registration. Raises the index only if the status changed, and returns whether it did.
    ///
    /// A new output under the same status is kept (reads show it) without raising the index,
    /// as in Consul: its agent syncs a change of output alone to the catalog only every
    /// `check_update_interval` (5 min), so no blocking query wakes for it. Otherwise the first
    /// run of every check registered passing (its output set for the first time) would wake
    /// every waiting query: a thousand instances, each with a waiting query on its own
    /// registration, cost a million wake-ups in their first check interval.
    pub(crate) fn set_check(
        &mut self,
        id: &str,
        generation: Option<u64>,
        status: Status,
        output: &str,
    ) -> bool {
        let Some(check) = self.checks.get_mut(id) else {
            return false;
        };
        if generation.is_some_and(|g| g != check.generation) {
            return false;
        }
        if check.status == status {
            if check.output != output {
                check.output = output.to_owned();
            }
            return false;
        }
        check.set_status(status);
        check.output = output.to_owned();
        let (name, node) = (check.service_name.clone(), check.service_id.is_empty());
        let index = if node {
            self.bump_node()
        } else {
            self.bump([name.as_str()])
        };
        self.checks_index = index;
        if let Some(check) = self.checks.get_mut(id) {
            check.modify_index = index;
        }
        true
    }

    /// A TTL update (`pass`, `warn`, `fail`, `update`): sets status and output, re-arms the timer
    /// (its runner, waiting for the old deadline, is to be told). The error is Consul's text for a check without a TTL.
    pub(crate) fn update_ttl(
        &mut self,
        id: &str,
        status: Status,
        output: &str,
    ) -> Result<(), String> {
        let no_ttl = || format!("CheckID {id:?} does not have associated TTL");
        let check = self.checks.get_mut(id).ok_or_else(no_ttl)?;
        let output = check.def.truncate_output(output);
        let ttl = check.ttl.as_mut().ok_or_else(no_ttl)?;
        ttl.deadline = Some(Instant::now() + ttl.ttl);
        ttl.last_output = output.clone();
        self.set_check(id, None, status, &output);
        Ok(())
    }

    /// Writes a KV entry; with `cas`, only if the entry's ModifyIndex equals it (0: only if absent).
    pub(crate) fn kv_put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        flags: u64,
        cas: Option<u64>,
    ) -> bool {
        let old = self.kv.get(key);
        if let Some(cas) = cas {
            let current = old.map_or(0, |e| e.modify_index);
            if cas != current {
                return false;
            }
        }
        self.index += 1;
        self.kv_index = self.index;
        let create_index = old.map_or(self.index, |e| e.create_index);
        self.kv_tombstones.remove(key);
        self.kv.insert(
            key.to_owned(),
            KvEntry {
                value,
                flags,
                create_index,
                modify_index: self.index,
            },
        );
        true
    }

    /// Deletes one key, or every key under a prefix; with `cas`, only if the ModifyIndex matches.
    pub(crate) fn kv_delete(&mut self, key: &str, recurse: bool, cas: Option<u64>) -> bool {
        if let Some(cas) = cas {
            if self.kv.get(key).is_some_and(|e| e.modify_index != cas) {
                return false;
            }
        }
        let doomed: Vec<String> = if recurse {
            self.kv
                .keys()
                .filter(|k| k.starts_with(key))
                .cloned()
                .collect()
        } else {
            self.kv
                .contains_key(key)
                .then(|| key.to_owned())
                .into_iter()
                .collect()
        };
        if doomed.is_empty() {
            return true;
        }
        self.index += 1;
        self.kv_index = self.index;
        for k in doomed {
            self.kv.remove(&k);
            self.kv_tombstones.insert(k, self.index);
        }
        true
    }

    /// The index of a KV read: the entry's ModifyIndex, or for a list the highest under the
    /// prefix (deleted keys included); the KV table's index when there is nothing.
    pub(crate) fn kv_read_index(&self, key: &str, recurse: bool) -> u64 {
        let idx = if recurse {
            let live = self
                .kv
                .range(key.to_owned()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(_, e)| e.modify_index);
            let dead = self
                .kv_tombstones
                .range(key.to_owned()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(_, i)| *i);
            live.chain(dead).max()
        } else {
            self.kv.get(key).map(|e| e.modify_index)
        };
        idx.unwrap_or(self.kv_index)
    }

    /// Services whose checks have been critical for longer than they allow.
    pub(crate) fn services_to_reap(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .checks
            .values()
            .filter(|c| !c.service_id.is_empty())
            .filter(|c| match (c.reap_after, c.critical_since) {
                (Some(after), Some(since)) => since.elapsed() > after,
                _ => false,
            })
            .map(|c| c.service_id.clone())
            .collect();
        ids.dedup();
        ids
    }
}

/// The state behind its lock, and the channel that announces its changes.
pub(crate) struct Store {
    state: Mutex<State>,
    changes: watch::Sender<Version>,
}

impl Store {
    pub(crate) fn new() -> Store {
        let state = State::new(0);
        let (changes, _) = watch::channel(Version {
            generation: state.generation,
            index: state.index,
        });
        Store {
            state: Mutex::new(state),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way readers
        // could not cope with, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the state; if the index or the generation moved, wakes every blocking query.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.lock();
        let before = (state.generation, state.index);
        let result = f(&mut state);
        if (state.generation, state.index) != before {
            self.changes.send_replace(Version {
                generation: state.generation,
                index: state.index,
            });
        }
        result
    }

    /// A receiver that sees every published change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Version> {
        self.changes.subscribe()
    }

    /// How many requests are subscribed to changes: the blocking queries waiting right now.
    pub(crate) fn waiting(&self) -> usize {
        self.changes.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(id: &str, name: &str) -> Service {
        Service::new(ServiceDef {
            id: id.into(),
            name: name.into(),
            port: 80,
            weights: (1, 1),
            ..ServiceDef::default()
        })
    }

    fn check(id: &str, service_id: &str, status: Option<Status>) -> NewCheck {
        let mut check = Check::new(id.into(), "c".into(), status);
        check.service_id = service_id.into();
        NewCheck { check }
    }

    #[test]
    fn identical_registration_does_not_raise_the_index() {
        let mut st = State::new(0);
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        let index = st.index;
        assert_eq!(st.service_index("web"), index);
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert_eq!(st.index, index);
        let mut changed = service("a", "web");
        changed.def.port = 81;
        st.add_service(changed, vec![check("c", "a", None)], false);
        assert!(st.index > index);
        assert_eq!(st.services["a"].create_index, index);
        assert_eq!(st.services["a"].modify_index, st.index);
    }

    #[test]
    fn reregistration_keeps_check_status_even_when_given() {
        // Consul keeps an existing check's status and output across a new registration,
        // whatever `Status` the registration names; only a new check takes it.
        let mut st = State::new(0);
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        st.set_check("c", None, Status::Passing, "ok");
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert_eq!(st.checks["c"].status, Status::Passing);
        st.add_service(
            service("a", "web"),
            vec![check("c", "a", Some(Status::Warning))],
            true,
        );
        assert_eq!(st.checks["c"].status, Status::Passing);
        assert_eq!(st.checks["c"].output, "ok");
        st.add_service(
            service("a", "web"),
            vec![check("d", "a", Some(Status::Warning))],
            false,
        );
        assert_eq!(
            st.checks["d"].status,
            Status::Warning,
            "a new check takes it"
        );
    }

    #[test]
    fn the_services_index_follows_instances_not_their_checks() {
        let mut st = State::new(0);
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        let registered = st.services_index;
        assert_eq!(registered, st.index);
        assert!(st.set_check("c", None, Status::Passing, "ok"));
        assert_eq!(st.services_index, registered, "a check's change");
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert_eq!(st.services_index, registered, "the same registration again");
        st.add_service(service("a", "web"), vec![check("d", "a", None)], false);
        assert_eq!(st.services_index, registered, "a check added");
        st.remove_service("a");
        assert_eq!(st.services_index, st.index, "deregistered");
    }

    #[test]
    fn the_checks_index_follows_checks_not_checkless_services() {
        let mut st = State::new(0);
        let start = st.checks_index;
        st.add_service(service("plain", "plain"), Vec::new(), false);
        assert_eq!(st.checks_index, start, "a service without checks");
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert_eq!(st.checks_index, st.index, "a service with a check");
        assert!(st.set_check("c", None, Status::Passing, "ok"));
        assert_eq!(st.checks_index, st.index, "a check's change");
        let changed = st.checks_index;
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert_eq!(st.checks_index, changed, "the same registration again");
        assert!(st.remove_check("c"));
        assert_eq!(st.checks_index, st.index, "a check removed");
        st.remove_service("plain");
        assert_eq!(st.checks_index, st.index, "a deregistration, as Consul's");
    }

    #[test]
    fn changed_checks_are_registrations_and_removals_not_status_changes() {
        let mut st = State::new(0);
        st.add_service(
            service("a", "web"),
            vec![check("c1", "a", None), check("c2", "a", None)],
            false,
        );
        assert_eq!(st.take_changed_checks(), ["c1", "c2"]);
        assert!(st.take_changed_checks().is_empty(), "taken once");
        st.set_check("c1", None, Status::Passing, "ok");
        assert!(st.take_changed_checks().is_empty(), "a status change");
        st.add_service(service("a", "web"), vec![check("c1", "a", None)], true);
        assert_eq!(
            st.take_changed_checks(),
            ["c1", "c2"],
            "re-registered, replaced"
        );
        st.remove_service("a");
        assert_eq!(st.take_changed_checks(), ["c1"]);
        st.add_service(service("b", "api"), vec![check("c3", "b", None)], false);
        st.restart();
        assert_eq!(st.take_changed_checks(), ["c3"], "gone with the restart");
        assert!(st.checks.is_empty() && st.services.is_empty());
        assert_eq!((st.generation, st.index), (1, START_INDEX));
    }

    #[test]
    fn replace_existing_checks_drops_the_others() {
        let mut st = State::new(0);
        st.add_service(
            service("a", "web"),
            vec![check("c1", "a", None), check("c2", "a", None)],
            false,
        );
        st.add_service(service("a", "web"), vec![check("c1", "a", None)], true);
        assert!(st.checks.contains_key("c1") && !st.checks.contains_key("c2"));
    }

    #[test]
    fn unchanged_check_update_does_not_raise_the_index() {
        let mut st = State::new(0);
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert!(st.set_check("c", None, Status::Passing, "ok"));
        let index = st.index;
        assert!(!st.set_check("c", None, Status::Passing, "ok"));
        assert_eq!(st.index, index);
        assert!(st.set_check("c", None, Status::Warning, "ok"));
        assert!(st.index > index);
    }

    #[test]
    fn a_new_output_under_the_same_status_is_kept_without_raising_the_index() {
        // Consul syncs a change of output alone only every `check_update_interval`: a
        // blocking query does not wake for it, and `/v1/agent/checks` shows it at once.
        let mut st = State::new(0);
        st.add_service(service("a", "web"), vec![check("c", "a", None)], false);
        assert!(st.set_check("c", None, Status::Passing, "ok"));
        let (index, modify) = (st.index, st.checks["c"].modify_index);
        assert!(!st.set_check("c", None, Status::Passing, "other output"));
        assert_eq!((st.index, st.checks["c"].modify_index), (index, modify));
        assert_eq!(st.checks["c"].output, "other output");
        assert!(st.set_check("c", None, Status::Critical, "down"));
        assert!(st.index > index);
        assert_eq!(st.checks["c"].output, "down");
    }

    #[test]
    fn a_name_without_instances_reports_the_last_extinction_as_consul_does() {
        let mut st = State::new(0);
        st.add_service(service("a", "web"), vec![], false);
        st.add_service(service("b", "api"), vec![], false);
        assert_eq!(
            st.service_index("nothing"),
            st.catalog_index,
            "no extinction yet"
        );
        st.remove_service("a");
        let web_gone = st.index;
        assert_eq!(st.service_index("web"), web_gone);
        assert_eq!(st.service_index("nothing"), web_gone);
        st.add_service(service("c", "db"), vec![], false);
        assert_eq!(st.service_index("web"), web_gone, "another name arriving");
        st.remove_service("b");
        assert_eq!(
            st.service_index("web"),
            st.index,
            "another name's extinction"
        );
        st.add_service(service("a", "web"), vec![], false);
        assert_eq!(st.service_index("web"), st.index, "back with an instance");
        // Renamed: the old name has no instance left.
        let mut renamed = service("a", "www");
        renamed.def.port = 81;
        st.add_service(renamed, vec![], false);
        assert_eq!(st.service_extinction, Some(st.index));
        assert!(!st.name_index.contains_key("web"));
        assert_eq!(st.service_index("www"), st.index);
    }

    #[test]
    fn names_that_came_and_went_leave_no_entry_behind() {
        let mut st = State::new(0);
        for i in 0..1000 {
            st.add_service(
                service(&format!("s{i}"), &format!("name-{i}")),
                vec![],
                false,
            );
        }
        assert_eq!(st.name_index.len(), 1000);
        for i in 0..1000 {
            st.remove_service(&format!("s{i}"));
        }
        assert!(st.name_index.is_empty());
        assert!(
            st.name_index.capacity() <= 64,
            "{}",
            st.name_index.capacity()
        );
    }

    #[test]
    fn kv_indexes_follow_consul() {
        let mut st = State::new(0);
        assert_eq!(st.kv_read_index("fabio/config", false), st.kv_index);
        assert!(st.kv_put("fabio/config", b"x".to_vec(), 0, None));
        let i = st.index;
        assert_eq!(st.kv_read_index("fabio/config", false), i);
        assert!(!st.kv_put("fabio/config", b"y".to_vec(), 0, Some(0)));
        assert!(st.kv_put("fabio/config", b"y".to_vec(), 0, Some(i)));
        assert!(st.kv_delete("fabio/", true, None));
        assert_eq!(st.kv_read_index("fabio/", true), st.index);
    }
}
