//! The driver diagrams of the demo trust's projects, by theme (in the order of
//! [`super::projects::THEMES`]): three primary drivers of the theme's aim, two secondary
//! drivers under each, and the secondary drivers each of the theme's four change ideas
//! serves (by their place, 0 to 5, in the order written).

/// One theme's diagram.
pub(crate) struct Drivers {
    /// Each primary driver with its two secondary drivers.
    pub(crate) primary: [(&'static str, [&'static str; 2]); 3],
    /// For each of the theme's change ideas, in order, the secondary drivers it serves.
    pub(crate) serves: [&'static [usize]; 4],
}

/// The diagrams, by theme.
pub(crate) const DRIVERS: [Drivers; 5] = [
    // Patient flow.
    Drivers {
        primary: [
            (
                "Discharge planned from the day of admission",
                [
                    "An expected discharge date set early and shared with the patient",
                    "Discharge criteria agreed by the whole team",
                ],
            ),
            (
                "Medicines and transport ready on the day",
                [
                    "Medicines to take home ready before they are needed",
                    "Transport arranged ahead of the day",
                ],
            ),
            (
                "Senior decisions every day, weekends included",
                [
                    "A board round every morning",
                    "Decisions at weekends as on weekdays",
                ],
            ),
        ],
        serves: [&[0, 4], &[2], &[1, 5], &[3]],
    },
    // Patient safety (falls).
    Drivers {
        primary: [
            (
                "Every shift knows who is at risk of falling",
                [
                    "Risk assessed soon after admission",
                    "Risk handed over at every huddle",
                ],
            ),
            (
                "Patients at risk are watched where they fall",
                [
                    "A member of staff always present in the bay",
                    "Supervision at night",
                ],
            ),
            (
                "The causes of falls are found and treated",
                [
                    "Postural hypotension found on admission",
                    "Medicines that raise the risk reviewed",
                ],
            ),
        ],
        serves: [&[2, 3], &[0], &[1, 3], &[4]],
    },
    // Patient experience (complaints).
    Drivers {
        primary: [
            (
                "Patients and families kept informed",
                [
                    "Staff known by name",
                    "The plan for the day explained every day",
                ],
            ),
            (
                "Concerns heard and resolved early",
                [
                    "Concerns easy to raise on the ward",
                    "A reply within 48 hours",
                ],
            ),
            (
                "A restful place to recover",
                ["Quiet at night", "Comfort needs asked about"],
            ),
        ],
        serves: [&[0, 1], &[2, 3], &[4], &[2, 5]],
    },
    // Staff wellbeing (engagement).
    Drivers {
        primary: [
            (
                "Staff feel supported by their team",
                ["Time to talk as a team", "Support after a difficult shift"],
            ),
            (
                "Breaks and rest are protected",
                [
                    "Breaks planned into every shift",
                    "Cover for breaks agreed in advance",
                ],
            ),
            (
                "Staff have a say over their working lives",
                [
                    "Rotas known well ahead",
                    "Requests answered fairly and on time",
                ],
            ),
        ],
        serves: [&[0], &[2, 3], &[1], &[4, 5]],
    },
    // Process efficiency.
    Drivers {
        primary: [
            (
                "Work starts on time",
                [
                    "The first patient ready on time",
                    "The team briefed before the list",
                ],
            ),
            (
                "Information is where it is needed",
                [
                    "A handover that is complete and legible",
                    "Each test ordered once",
                ],
            ),
            (
                "Equipment and stock to hand",
                [
                    "Stock matched to each bay",
                    "Missing items reported at once",
                ],
            ),
        ],
        serves: [&[0, 1], &[2], &[4, 5], &[3]],
    },
];
