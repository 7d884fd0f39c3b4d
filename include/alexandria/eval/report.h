#pragma once
// What `alexandria eval` shows a person: the summary table (one set of rows, drawn as text on the terminal and as
// HTML in report.html, so a column added to `summary_table` appears in both), the training curves read from each
// adapter's metrics log, and report.html (issue 16): one self-contained page with the verdict table, the loss
// curves, a row of audio players per prompt and seed (base model, each adapter, the dataset's reference), and the
// troubleshooting lines with their fixes. Audio is linked relatively inside the output folder, so the folder can
// be zipped or served as it is.
#include <optional>
#include <string>
#include <vector>

#include "alexandria/eval/evaluate.h"

namespace alexandria::eval {

constexpr const char* kReportFile = "report.html";
constexpr const char* kReferenceDir = "reference";  // OUT/reference/ref.<ext>: the dataset's reference clip

// ---- the summary table ------------------------------------------------------------------------------------------

struct TableColumn {
    std::string key;     // stable identifier ("adapter", "loss", "band", ...): the HTML class, what tests look up
    std::string header;  // as printed
    int width = 0;       // terminal width (0: as wide as the text, for the last column)
    bool left = false;   // terminal alignment
    std::string sep = " ";  // terminal separator before this column
};
struct TableRow {
    std::string label;
    bool judged = false;    // false for the base model (the reference row)
    bool usable = false;
    std::string band;       // plan::loss_band_name of the held-out loss, "" without a loss
    std::vector<std::string> cells;  // one per column, as printed
};
struct SummaryTable {
    std::vector<TableColumn> columns;
    std::vector<TableRow> rows;  // the base model first (when compared), then the adapters in input order
};
SummaryTable summary_table(const EvalReport& report);

// ---- training curves --------------------------------------------------------------------------------------------

struct CurvePoint {
    double x = 0;  // step number, or epoch number for epoch points
    double alexandria = kNaN, aligned = kNaN;
};
struct TrainingCurve {
    std::string log;                  // the metrics.jsonl read
    std::vector<CurvePoint> steps;    // per optimiser step
    std::vector<CurvePoint> epochs;   // per epoch average (x = the last step of the epoch when known, else epoch)
    std::vector<int> epoch_numbers;   // parallel to `epochs`
    int unreadable_lines = 0;         // lines that are not JSON objects of a known type (skipped)
};
// The metrics log of an adapter folder: its metrics.jsonl, else that of the training run two levels up when the
// folder is OUT/checkpoints/epoch-N (as recorded_language). nullopt when there is none or it has no loss line.
std::optional<TrainingCurve> read_training_curve(const std::string& adapter_dir);
// Parses a metrics log's text (exposed for tests).
TrainingCurve parse_training_curve(const std::string& text, const std::string& log_name);

// An inline SVG (no fixed pixel size: it scales to its container) of both objectives' step and epoch losses over
// the seed's loss bands, with a marker at each epoch in `marks` (the evaluated checkpoints of this run).
std::string loss_curve_svg(const TrainingCurve& curve, const std::vector<std::pair<int, std::string>>& marks,
                           const std::string& title);

// ---- report.html ------------------------------------------------------------------------------------------------

struct ReportAssets {
    fs::path out;                 // the output folder: audio is linked relative to it
    std::string reference_audio;  // the dataset's reference clip, relative to `out` ("" = not available)
    double reference_seconds = kNaN;
    std::vector<std::optional<TrainingCurve>> curves;  // parallel to report.adapters
};

// The page (pure: everything it shows comes from the arguments).
std::string report_html(const EvalReport& report, const ReportAssets& assets);

// Copies the dataset's reference clip into OUT/reference/, reads the adapters' metrics logs, writes
// OUT/report.html atomically; returns its path.
fs::path write_report(const EvalReport& report, const fs::path& out, const std::string& reference_audio);

}  // namespace alexandria::eval
