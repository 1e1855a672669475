class CourseError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""
