//! The content catalogue: what survey, education, exercise and care-plan tasks
//! assign. Ids and names only; the questionnaires themselves are copyrighted
//! and live with the engagement platform.
//!
//! The surveys include the five MIPS outcome measures, each for the body
//! regions it serves, so a workflow can ask for `mips:auto`: the measure for
//! the case's body region, read from the case description.
use serde::Serialize;

use super::task::TaskKind;

/// Body regions, as the MIPS outcome measures divide them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyRegion {
    HipThigh,
    LowerLeg,
    AnkleFoot,
    Back,
    Neck,
    Knee,
    Shoulder,
    Elbow,
    WristHand,
}

impl BodyRegion {
    pub const ALL: [BodyRegion; 9] = [
        BodyRegion::HipThigh,
        BodyRegion::LowerLeg,
        BodyRegion::AnkleFoot,
        BodyRegion::Back,
        BodyRegion::Neck,
        BodyRegion::Knee,
        BodyRegion::Shoulder,
        BodyRegion::Elbow,
        BodyRegion::WristHand,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BodyRegion::HipThigh => "hip_thigh",
            BodyRegion::LowerLeg => "lower_leg",
            BodyRegion::AnkleFoot => "ankle_foot",
            BodyRegion::Back => "back",
            BodyRegion::Neck => "neck",
            BodyRegion::Knee => "knee",
            BodyRegion::Shoulder => "shoulder",
            BodyRegion::Elbow => "elbow",
            BodyRegion::WristHand => "wrist_hand",
        }
    }

    pub fn parse(s: &str) -> Option<BodyRegion> {
        BodyRegion::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// The region a case description names ("Right Shoulder", "Low back pain",
    /// "L knee ACL reconstruction"), by keyword; `None` when it names none.
    pub fn from_description(description: &str) -> Option<BodyRegion> {
        let d = description.to_ascii_lowercase();
        let words: Vec<&str> = d
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has = |w: &str| {
            words
                .iter()
                .any(|x| *x == w || (w.len() > 4 && x.starts_with(w)))
        };
        let phrase = |p: &str| d.contains(p);
        // Most specific first: "lower leg" before "leg", "low back" before "back".
        let table: [(BodyRegion, &[&str], &[&str]); 9] = [
            (
                BodyRegion::LowerLeg,
                &["calf", "shin", "tibia", "fibula"],
                &["lower leg"],
            ),
            (
                BodyRegion::AnkleFoot,
                &[
                    "ankle", "foot", "feet", "heel", "toe", "toes", "plantar", "achilles",
                ],
                &[],
            ),
            (
                BodyRegion::Knee,
                &["knee", "acl", "mcl", "menisc", "patell"],
                &[],
            ),
            (
                BodyRegion::HipThigh,
                &["hip", "thigh", "femur", "femoral", "groin", "hamstring"],
                &[],
            ),
            (
                BodyRegion::Back,
                &[
                    "back",
                    "lumbar",
                    "lumbago",
                    "sciatica",
                    "spine",
                    "spinal",
                    "thoracic",
                    "sacroiliac",
                ],
                &["low back"],
            ),
            (BodyRegion::Neck, &["neck", "cervical", "whiplash"], &[]),
            (
                BodyRegion::Shoulder,
                &["shoulder", "rotator", "glenohumeral", "clavicle", "scapula"],
                &["rotator cuff"],
            ),
            (
                BodyRegion::Elbow,
                &["elbow", "epicondylitis", "epicondyl", "olecranon"],
                &[],
            ),
            (
                BodyRegion::WristHand,
                &[
                    "wrist", "hand", "hands", "finger", "fingers", "thumb", "carpal",
                ],
                &[],
            ),
        ];
        table
            .iter()
            .find(|(_, words, phrases)| {
                words.iter().any(|w| has(w)) || phrases.iter().any(|p| phrase(p))
            })
            .map(|(r, _, _)| *r)
    }
}

/// One piece of catalogue content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Content {
    pub id: &'static str,
    pub kind: TaskKind,
    pub name: &'static str,
    /// For a MIPS measure: the regions it serves.
    pub body_regions: &'static [BodyRegion],
    pub mips: bool,
}

const fn survey(
    id: &'static str,
    name: &'static str,
    regions: &'static [BodyRegion],
    mips: bool,
) -> Content {
    Content {
        id,
        kind: TaskKind::Survey,
        name,
        body_regions: regions,
        mips,
    }
}

const fn item(id: &'static str, kind: TaskKind, name: &'static str) -> Content {
    Content {
        id,
        kind,
        name,
        body_regions: &[],
        mips: false,
    }
}

use BodyRegion::*;

/// Everything the catalogue holds.
pub const CATALOGUE: &[Content] = &[
    survey(
        "lefs",
        "Lower Extremity Functional Scale (LEFS)",
        &[HipThigh, LowerLeg, AnkleFoot],
        true,
    ),
    survey(
        "modified-oswestry",
        "Modified Oswestry Low Back Pain Disability Questionnaire",
        &[Back],
        true,
    ),
    survey("ndi", "Neck Disability Index (NDI)", &[Neck], true),
    survey(
        "kos",
        "Knee Outcome Survey - Activities of Daily Living (KOS-ADLS)",
        &[Knee],
        true,
    ),
    survey(
        "quickdash",
        "QuickDASH (Disabilities of the Arm, Shoulder and Hand)",
        &[Shoulder, Elbow, WristHand],
        true,
    ),
    survey("nps", "Net Promoter Score", &[], false),
    item(
        "welcome-to-therapy",
        TaskKind::Education,
        "What to expect from physical therapy",
    ),
    item(
        "home-exercise-basics",
        TaskKind::Education,
        "Doing your home exercises well",
    ),
    item(
        "home-exercise-program",
        TaskKind::Exercise,
        "Your home exercise program",
    ),
    item(
        "discharge-plan",
        TaskKind::CarePlan,
        "Your plan after discharge",
    ),
];

/// The `mips:auto` content name.
pub const MIPS_AUTO: &str = "mips:auto";

pub fn find(id: &str) -> Option<&'static Content> {
    CATALOGUE.iter().find(|c| c.id == id)
}

/// Whether `content` names content of `kind` (`mips:auto` is a survey).
pub fn content_exists(kind: TaskKind, content: &str) -> bool {
    (kind == TaskKind::Survey && content == MIPS_AUTO)
        || find(content).is_some_and(|c| c.kind == kind)
}

/// The MIPS outcome measure for a body region.
pub fn mips_measure(region: BodyRegion) -> &'static Content {
    CATALOGUE
        .iter()
        .find(|c| c.mips && c.body_regions.contains(&region))
        .expect("every body region has a MIPS measure")
}

/// The content a task assigns: itself, or for `mips:auto` the measure for the
/// case's region (`None` when the case names no region).
pub fn resolve(content: &str, case_description: Option<&str>) -> Option<&'static Content> {
    if content == MIPS_AUTO {
        return case_description
            .and_then(BodyRegion::from_description)
            .map(mips_measure);
    }
    find(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_exactly_one_mips_measure() {
        for region in BodyRegion::ALL {
            let measures: Vec<_> = CATALOGUE
                .iter()
                .filter(|c| c.mips && c.body_regions.contains(&region))
                .collect();
            assert_eq!(measures.len(), 1, "{region:?}");
        }
        assert_eq!(CATALOGUE.iter().filter(|c| c.mips).count(), 5);
    }

    #[test]
    fn case_descriptions_name_regions() {
        for (d, r) in [
            ("Right Shoulder", Some(Shoulder)),
            ("M75.1 rotator cuff tear", Some(Shoulder)),
            ("Low back pain", Some(Back)),
            ("L knee ACL reconstruction", Some(Knee)),
            ("Plantar fasciitis, left foot", Some(AnkleFoot)),
            ("Right lower leg fracture", Some(LowerLeg)),
            ("Cervical strain", Some(Neck)),
            ("Lateral epicondylitis", Some(Elbow)),
            ("Carpal tunnel syndrome", Some(WristHand)),
            ("Hip replacement", Some(HipThigh)),
            ("General deconditioning", None),
            ("Backache", None),
        ] {
            assert_eq!(BodyRegion::from_description(d), r, "{d}");
        }
        assert_eq!(
            resolve(MIPS_AUTO, Some("Right Shoulder")).unwrap().id,
            "quickdash"
        );
        assert_eq!(resolve(MIPS_AUTO, Some("knee pain")).unwrap().id, "kos");
        assert!(resolve(MIPS_AUTO, None).is_none());
    }
}
