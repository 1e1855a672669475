# nbgrader's settings for this course directory; `course` uses the same ones.
c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file
c.CourseDirectory.course_id = "dl-first-principles"
c.CourseDirectory.root = "."
# Hidden tests live in autograder/, never in the notebooks; grading goes through `course grade`.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
