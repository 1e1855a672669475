# nbgrader's settings for this course directory; `course` uses the same ones.
c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file
c.CourseDirectory.course_id = "dl-first-principles"
c.CourseDirectory.root = "."
# Hidden tests live in autograder/, never in the notebooks; grading goes through `course grade`.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# nbgrader's own autograde (`nbgrader autograde`, formgrader's Autograde button) would grade with the visible
# checks alone, unsandboxed, and replace the hidden tests' scores: it refuses and says to run `course grade`.
c.Autograde.exporter_class = "course.publish.nbgrader.RefuseAutograde"
# Late submissions: `course grade` records when nbgrader collected each one and applies nbgrader's late
# penalty against the due date (`nbgrader db assignment add week1 --duedate=...` or `course due`) and the
# student's extension (`course extension`). "zero": a late submission scores 0; "none": no penalty.
c.LateSubmissionPlugin.penalty_method = "zero"
