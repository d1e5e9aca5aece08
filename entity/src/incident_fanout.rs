//! A security-incident fan-out: the notice of one report, its audience and
//! how far its mailing got. It holds the incident's description (no
//! personal data), account ids and counts.

use sea_orm::entity::prelude::*;

/// One row of `incident_fanouts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "incident_fanouts")]
pub struct Model {
    /// Random id; the id of the incident report in the API.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The ADMIN who reported the incident.
    pub actor_id: Uuid,
    /// `ALL_ACCOUNTS` or `LISTED_ACCOUNTS`.
    pub audience: String,
    /// With `LISTED_ACCOUNTS`: the listed account ids, sorted and without
    /// repeats, as a JSON array of strings; cleared when the fan-out is done.
    pub listed_ids: Option<Json>,
    /// The notice's headline.
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
    /// Whether the reporter asked for a public announcement.
    pub publish_announcement: bool,
    /// ACTIVE accounts the incident concerned when it was reported.
    pub affected: i64,
    /// Notices queued so far.
    pub notified: i64,
    /// Notices that could not be sealed so far.
    pub failed: i64,
    /// The keyset cursor: the last account id handled (`None` before the
    /// first page).
    pub last_account_id: Option<Uuid>,
    /// `RUNNING` or `DONE`.
    pub status: String,
    /// The public announcement, once one is published.
    pub announcement_id: Option<Uuid>,
    /// The driver holding the lease, while one does.
    pub lease_owner: Option<Uuid>,
    /// Until when that driver holds it; after this the job runner resumes.
    pub lease_until: Option<DateTimeUtc>,
    /// When the incident was reported.
    pub created_at: DateTimeUtc,
    /// When every affected account had been handled.
    pub finished_at: Option<DateTimeUtc>,
}

/// No declared relations: the row outlives the accounts it names.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
