//! The workforce's make-up: each site's share, and the staff groups with their job roles
//! and pay bands.

/// Each site's share of the workforce, in thousandths.
pub(crate) const SITE_SHARE: [u32; 3] = [373, 327, 300];

/// Job roles with their pay band.
pub(crate) type Roles = &'static [(&'static str, &'static str)];

/// Staff groups (national codes) with their share, a job role and a pay band for each.
pub(crate) const GROUPS: [(&str, u32, Roles); 8] = [
    (
        "03",
        30,
        &[
            ("Staff Nurse", "Band 5"),
            ("Senior Staff Nurse", "Band 6"),
            ("Ward Sister", "Band 7"),
            ("Matron", "Band 8a"),
        ],
    ),
    (
        "07",
        20,
        &[
            ("Healthcare Assistant", "Band 2"),
            ("Senior Healthcare Assistant", "Band 3"),
            ("Nursing Associate", "Band 4"),
        ],
    ),
    (
        "08",
        20,
        &[
            ("Ward Clerk", "Band 2"),
            ("Medical Secretary", "Band 3"),
            ("Service Manager", "Band 8a"),
            ("Data Analyst", "Band 6"),
        ],
    ),
    (
        "01",
        12,
        &[
            ("Consultant", "Consultant"),
            ("Specialty Doctor", "Specialty Doctor"),
            ("Registrar", "Specialty Registrar"),
            ("Foundation Doctor", "Foundation Year 2"),
        ],
    ),
    (
        "04",
        8,
        &[
            ("Physiotherapist", "Band 6"),
            ("Occupational Therapist", "Band 6"),
            ("Dietitian", "Band 5"),
            ("Speech and Language Therapist", "Band 7"),
        ],
    ),
    (
        "09",
        6,
        &[("Porter", "Band 2"), ("Domestic Assistant", "Band 2")],
    ),
    (
        "05",
        3,
        &[("Pharmacist", "Band 7"), ("Pharmacy Technician", "Band 5")],
    ),
    ("06", 1, &[("Biomedical Scientist", "Band 6")]),
];
