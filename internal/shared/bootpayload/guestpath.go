package bootpayload

// CheckGuestPath reports why p cannot be a File's Path: it must be
// absolute, clean and below GuestHome. It is the rule Validate and Apply
// hold every file to, for whoever chooses paths ahead of a boot (the
// config's auth_files).
func CheckGuestPath(p string) error {
	_, err := homeRel(p)
	return err
}
