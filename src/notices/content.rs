//! The text of an incident notice, block by block: what the mail, the
//! announcement and the API all speak of.

/// One content block of an incident notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentBlock {
    /// The headline.
    Title,
    /// What happened.
    WhatHappened,
    /// What it may mean for the people affected.
    PossibleImpact,
    /// What was done about it.
    MeasuresTaken,
    /// What people should do now.
    AdviceToUsers,
    /// What remedies people have.
    Remedies,
}

/// The text of an incident notice, every block trimmed and non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentContent {
    /// The headline.
    pub title: String,
    /// What happened.
    pub what_happened: String,
    /// What it may mean for the people affected.
    pub possible_impact: String,
    /// What was done about it.
    pub measures_taken: String,
    /// What people should do now.
    pub advice_to_users: String,
    /// What remedies people have.
    pub remedies: String,
}

impl IncidentContent {
    /// The text of one block.
    pub fn block(&self, block: ContentBlock) -> &str {
        match block {
            ContentBlock::Title => &self.title,
            ContentBlock::WhatHappened => &self.what_happened,
            ContentBlock::PossibleImpact => &self.possible_impact,
            ContentBlock::MeasuresTaken => &self.measures_taken,
            ContentBlock::AdviceToUsers => &self.advice_to_users,
            ContentBlock::Remedies => &self.remedies,
        }
    }
}
