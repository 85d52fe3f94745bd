//! Lineage: one record per neuron id ever issued. Ids index this table and are never reused.

use crate::Step;

pub type NeuronId = u64;

/// Why a neuron is no longer alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Alive,
    /// Taken out of the network by `remove_neurons`; its slot was compacted away.
    Removed,
    /// Replaced in place by a fresh neuron (its child) by `reset_neurons`.
    Reset,
    /// Killed for low fitness by `apoptosis` and replaced in place by a newborn.
    Apoptosis,
    /// Escalated from senescence to apoptosis and replaced in place by a newborn.
    Senescence,
}

impl Fate {
    pub fn name(self) -> &'static str {
        match self {
            Fate::Alive => "alive",
            Fate::Removed => "removed",
            Fate::Reset => "reset",
            Fate::Apoptosis => "apoptosis",
            Fate::Senescence => "senescence",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        [
            Fate::Alive,
            Fate::Removed,
            Fate::Reset,
            Fate::Apoptosis,
            Fate::Senescence,
        ]
        .get(code as usize)
        .copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeuronRecord {
    pub layer: u32,
    /// Current slot while alive.
    pub slot: Option<u32>,
    pub birth: Step,
    pub death: Option<Step>,
    /// At most two parents (one for a copy or reset, two for a crossover).
    pub parents: [Option<NeuronId>; 2],
    pub generation: u32,
    pub fate: Fate,
}

impl NeuronRecord {
    pub fn newborn(
        layer: u32,
        slot: u32,
        birth: Step,
        parents: [Option<NeuronId>; 2],
        generation: u32,
    ) -> Self {
        NeuronRecord {
            layer,
            slot: Some(slot),
            birth,
            death: None,
            parents,
            generation,
            fate: Fate::Alive,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.fate == Fate::Alive
    }

    pub(crate) fn die(&mut self, step: Step, fate: Fate) {
        self.slot = None;
        self.death = Some(step);
        self.fate = fate;
    }
}
